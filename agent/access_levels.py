"""What each AWS operation does to the world: read, write, permissions or tagging, whether a read
returns secrets or data (sensitive), and whether a write destroys something.

Why a table shipped with the project instead of a verb check at run time: whether a step needs approval
must not depend on who wrote the plan. A server (or anyone holding the endpoint's token) can say
``mutating: false`` of ``DeleteDBInstance``; the client looks the operation up here and decides itself.
``Get`` is not "safe" either: ``secretsmanager GetSecretValue`` and ``sts AssumeRole`` hand out secrets,
so they are *sensitive* and need approval like a write (Amazon Q's prefix rule lets them through).

The table (``agent/data/access_levels.json``) is generated from the installed botocore models by
``python -m agent.access_levels --write``, using the rules below plus reviewed overrides, and kept in
the repository so a change of level shows up in review. A test holds it to botocore: every operation
of every service in ``SERVICES`` has an entry. An operation the table does not know (a newer botocore,
another service) fails closed: a write that is sensitive.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

AccessLevel = Literal["read", "write", "permissions", "tagging"]
TABLE_PATH = Path(__file__).parent / "data" / "access_levels.json"

# The 13 services the estate covers, plus those whose reads hand out credentials or secrets (a plan
# for them must be recognised as sensitive even though the estate holds none of their resources).
ESTATE_SERVICES = ("ec2", "rds", "s3", "lambda", "dynamodb", "ecs", "elbv2", "autoscaling", "sqs", "sns", "eks",
                   "cloudformation", "iam")
SERVICES = ESTATE_SERVICES + ("sts", "secretsmanager", "ssm", "kms")

_READ_VERBS = {"Describe", "Get", "List", "Head", "Search", "Lookup", "Query", "Scan", "Select", "Estimate",
               "Validate", "Simulate", "Check", "Verify", "Decode", "Download", "Preview", "Test"}
_DESTRUCTIVE_VERBS = {"Delete", "Terminate", "Purge", "Deprovision", "Release", "Deregister", "Withdraw"}
_TAGGING = re.compile(r"^(Tag|Untag)|^(Add|Remove)Tags|^(Create|Delete|CreateOrUpdate)Tags$|Tagging$")
_PERMISSIONS = re.compile(
    r"Polic(y|ies)(Version)?$|^(Add|Remove)(LayerVersion)?Permission$|^(Authorize|Revoke)SecurityGroup|Acl$"
    r"|PublicAccessBlock$|^(Create|Retire|Revoke)Grant$|^Modify(DBSnapshot|DBClusterSnapshot|Image|Snapshot|"
    r"FpgaImage)Attribute$|^Reset(Image|Snapshot|FpgaImage)Attribute$|PermissionsBoundary$|^(Attach|Detach)"
    r"(Role|User|Group)Policy$|^(Add|Remove)(User|Role)(To|From)(Group|InstanceProfile)$|^UpdateAssumeRolePolicy$"
    r"|^(Create|Delete|Update)(AccessKey|LoginProfile|ServiceSpecificCredential|SSHPublicKey|SigningCertificate)$"
    r"|^ResetServiceSpecificCredential$|^(Create|Delete|Update)(Role|User|Group|InstanceProfile)$"
    r"|^(Put|Delete)ResourcePolicy$|^(Add|Remove)ClientIDToOpenIDConnectProvider$")

# Reviewed: reads that return secrets, credentials or the data a resource holds, and calls that hand out
# credentials. Each needs approval like a write; the reason is what the operator reads.
SENSITIVE: dict[str, dict[str, str]] = {
    "secretsmanager": {"GetSecretValue": "returns a secret", "BatchGetSecretValue": "returns secrets",
                       "GetRandomPassword": "returns a new password"},
    "ssm": {"GetParameter": "can return a decrypted SecureString", "GetParameters": "can return decrypted SecureStrings",
            "GetParametersByPath": "can return decrypted SecureStrings",
            "GetParameterHistory": "can return decrypted SecureStrings", "StartSession": "opens a shell on an instance"},
    "sts": {"AssumeRole": "hands out credentials", "AssumeRoleWithSAML": "hands out credentials",
            "AssumeRoleWithWebIdentity": "hands out credentials", "AssumeRoot": "hands out root credentials",
            "GetSessionToken": "hands out credentials", "GetFederationToken": "hands out credentials"},
    "iam": {"CreateAccessKey": "creates and returns an access key", "CreateServiceSpecificCredential": "returns a password",
            "ResetServiceSpecificCredential": "returns a new password", "CreateLoginProfile": "sets a console password",
            "UpdateLoginProfile": "sets a console password"},
    "kms": {"Decrypt": "returns plaintext", "GenerateDataKey": "returns a plaintext data key",
            "GenerateDataKeyPair": "returns a plaintext private key", "GenerateRandom": "returns key material",
            "DeriveSharedSecret": "returns a shared secret"},
    "lambda": {"GetFunction": "returns a download URL for the function's code",
               "GetLayerVersion": "returns a download URL for the layer's code",
               "GetLayerVersionByArn": "returns a download URL for the layer's code"},
    "ec2": {"GetPasswordData": "returns a Windows administrator password (encrypted with the key pair)",
            "GetLaunchTemplateData": "returns user data, which often holds secrets",
            "GetConsoleOutput": "returns the instance's console, which can hold secrets",
            "GetConsoleScreenshot": "returns a screenshot of the instance's console"},
    "rds": {"DownloadDBLogFilePortion": "returns database log contents"},
    "s3": {"GetObject": "returns an object's contents", "SelectObjectContent": "returns an object's contents",
           "GetObjectTorrent": "returns an object's contents"},
    "dynamodb": {"GetItem": "returns table data", "BatchGetItem": "returns table data", "Query": "returns table data",
                 "Scan": "returns table data", "TransactGetItems": "returns table data"},
    "sqs": {"ReceiveMessage": "returns messages and hides them from other consumers for the visibility timeout"},
    "ecs": {"ExecuteCommand": "opens a shell in a container"},
}
# Reviewed levels where the verb rules are wrong.
OVERRIDES: dict[str, dict[str, AccessLevel]] = {
    "dynamodb": {"ExecuteStatement": "write", "BatchExecuteStatement": "write", "ExecuteTransaction": "write"},
    "sqs": {"ReceiveMessage": "read"},
    "kms": {"Decrypt": "read", "GenerateDataKey": "read", "GenerateDataKeyPair": "read", "GenerateRandom": "read",
            "DeriveSharedSecret": "read", "GenerateMac": "read", "VerifyMac": "read", "Verify": "read"},
    "iam": {"GenerateCredentialReport": "write", "GenerateServiceLastAccessedDetails": "write",
            "GenerateOrganizationsAccessReport": "write"},
    "cloudformation": {"DetectStackDrift": "write", "DetectStackResourceDrift": "write", "DetectStackSetDrift": "write",
                       "ValidateTemplate": "read", "TestType": "write"},
    "sts": {"GetCallerIdentity": "read", "GetAccessKeyInfo": "read", "DecodeAuthorizationMessage": "read"},
}
_VERB = re.compile(r"^[A-Z][a-z]+")


@dataclass(frozen=True)
class Access:
    """How one operation touches the world, and whether running it needs the operator's approval."""

    level: AccessLevel
    sensitive: bool = False
    destructive: bool = False
    known: bool = True
    sensitive_reason: str | None = None

    @property
    def mutating(self) -> bool:
        return self.level != "read"

    @property
    def needs_approval(self) -> bool:
        return self.mutating or self.sensitive

    def encode(self) -> str:
        return self.level + ("+sensitive" if self.sensitive else "") + ("+destructive" if self.destructive else "")


UNKNOWN = Access("write", sensitive=True, known=False,
                 sensitive_reason="not in the access-level table: treated as a sensitive write")


def classify(service: str, operation: str) -> Access:
    """The rule-based level of one operation (what the generator writes into the table)."""
    verb = (_VERB.match(operation) or [""])[0]
    level: AccessLevel
    if operation in OVERRIDES.get(service, {}):
        level = OVERRIDES[service][operation]
    elif _TAGGING.search(operation) and not operation.startswith(("List", "Describe", "Get")):
        level = "tagging"
    elif _PERMISSIONS.search(operation) and verb not in _READ_VERBS:
        level = "permissions"
    elif verb in _READ_VERBS or operation.startswith(("BatchGet", "TransactGet")):
        level = "read"
    else:
        level = "write"
    destructive = level not in ("read", "tagging") and (verb in _DESTRUCTIVE_VERBS or operation.startswith(("BatchDelete",)))
    reason = SENSITIVE.get(service, {}).get(operation)
    return Access(level, sensitive=reason is not None, destructive=destructive, sensitive_reason=reason)


def build_table() -> dict[str, dict[str, str]]:
    """Every operation of every service in SERVICES, from the installed botocore models."""
    import botocore.session

    session = botocore.session.get_session()
    return {service: {op: classify(service, op).encode()
                      for op in sorted(session.get_service_model(service).operation_names)}
            for service in SERVICES}


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, str]]:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


def access(service: str, operation: str) -> Access:
    """The shipped table's entry for ``service``'s ``operation``; UNKNOWN (a sensitive write) if absent."""
    encoded = _table().get(service, {}).get(operation)
    if encoded is None:
        return UNKNOWN
    level, *flags = encoded.split("+")
    return Access(level, sensitive="sensitive" in flags, destructive="destructive" in flags,  # type: ignore[arg-type]
                  sensitive_reason=SENSITIVE.get(service, {}).get(operation))


def main(argv: list[str]) -> int:
    """``--write``: regenerate the table; ``--check``: exit 1 when it differs from what botocore gives."""
    table = build_table()
    text = json.dumps(table, indent=0, sort_keys=True) + "\n"
    if "--write" in argv:
        TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
        TABLE_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {TABLE_PATH}: {sum(len(v) for v in table.values())} operations")
        return 0
    same = TABLE_PATH.exists() and TABLE_PATH.read_text(encoding="utf-8") == text
    print("table up to date" if same else "table differs from the installed botocore: run with --write")
    return 0 if same else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
