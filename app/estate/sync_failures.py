"""A sync's failures as a person reads them: one sentence per failing account and region, not one line per scope.

Why: a sync runs account x region x service scopes (72 for the demo estate), and when an account cannot be
reached every one of its scopes fails for the same reason; 72 identical raw lines hide the one thing to fix.
Failures are grouped by account and cause; the regions that share a cause are named together, and each cause
reads as what happened and what to do (a missing profile, expired credentials, no network, access denied), the
raw AWS error kept only when it is none of those. Also: the headline counts (``synced 0 of 72 scopes; 72
failed``), and a probe that an account can be reached at all, which `cloudops index rebuild` asks before it
builds anything.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

# botocore's and AWS's names for each cause (the error text starts with the exception or error code).
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError")
_EXPIRED = ("ExpiredToken", "ExpiredTokenException", "TokenRetrievalError", "SSOTokenLoadError",
            "UnauthorizedSSOTokenError", "InvalidClientTokenId", "RequestExpired", "SignatureDoesNotMatch",
            "UnrecognizedClientException", "AuthFailure", "InvalidAccessKeyId")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError",
                "ProxyConnectionError", "SSLError", "ConnectionError")
_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
           "AuthorizationErrorException")


@dataclass(frozen=True)
class Account:
    """What a failure sentence names about an account: its name and the profile it is reached through."""

    name: str
    profile: str | None = None


def missing_profile(error: str) -> str | None:
    """The profile's name when ``error`` says that profile is not in the AWS config (botocore's ProfileNotFound,
    or the sentence app.awsclient.describe_error makes of it), else None."""
    match = (re.match(r"ProfileNotFound: The config profile \((.*)\) could not be found", error)
             or re.match(r"the AWS profile '(.*?)' is not in the AWS config", error))
    return match.group(1) if match else None


def cause(error: str, account: Account, *, demo: bool = False) -> str:
    """What happened and what to do, for one error text of ``account``: botocore's ``Code: message``, or a
    sentence app.awsclient.describe_error already made (an SSO login to make, a missing profile), kept as is."""
    profile = missing_profile(error)
    if profile is not None and demo:
        return (f"profile {profile!r} is one of the demo's, and its simulated AWS is not running: run "
                "`cloudops demo --serve` with this CLOUDOPS_HOME and keep it running")
    coded = re.match(r"([A-Za-z][A-Za-z0-9.]*):", error)
    if coded is None:  # already a sentence saying what to do
        return _short(error, 400)
    code = coded.group(1)
    if profile is not None:
        return (f"profile {profile!r} is not in your AWS config: add it (`aws configure --profile {profile}`, or "
                f"`cloudops accounts import`) or give {account.name} another profile")
    if code in _NO_CREDENTIALS:
        return (f"no AWS credentials were found: give the account a profile (`cloudops accounts add {account.name} "
                "--profile NAME`) or keys (`--keys`)")
    if code in _EXPIRED:
        how = f"`aws sso login --profile {account.profile}`" if account.profile else "new keys"
        return f"its credentials were refused or have expired ({code}): refresh them ({how}) and sync again"
    if code in _UNREACHABLE:
        return f"AWS could not be reached ({code}): check the network or proxy, then sync again"
    if code in _DENIED:
        return (f"access was denied ({_short(error)}): the sync needs read access (docs/IAM.md holds a "
                "least-privilege policy)")
    return _short(error)


def _short(error: str, limit: int = 200) -> str:
    text = " ".join(error.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def failure_sentences(errors: list[dict], profiles: dict[str, str | None] | None = None, *,
                      demo: bool = False) -> list[str]:
    """One sentence per failing account and cause, naming the regions that share it: a sync's ``errors``
    (each with ``account``, and ``region`` and ``service`` unless the account itself failed) read by a person.
    ``profiles``: account name -> profile, for the advice; ``demo``: these are the demo's accounts."""
    profiles = profiles or {}
    # account -> cause -> region -> services; the account's own failure (no region) is region None
    grouped: dict[str, dict[str, dict[str | None, list[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for err in errors:
        name = err.get("account") or str(err.get("scope", "?")).split("/", 1)[0]
        why = cause(str(err.get("error", "")), Account(name, profiles.get(name)), demo=demo)
        grouped[name][why][err.get("region")].append(err.get("service") or "")
    lines = []
    order = list(profiles)  # the config's order of accounts, then any other
    for name, causes in sorted(grouped.items(), key=lambda item: (order.index(item[0]) if item[0] in order
                                                                  else len(order), item[0])):
        for why, regions in causes.items():
            if list(regions) == [None]:
                lines.append(f"{name}: the account could not be reached: {why}.")
                continue
            named = sorted(r for r in regions if r is not None)
            services = sum(len(s) for r, s in regions.items() if r is not None)
            lines.append(f"{name} in {_join(named)}: {services} scope{'s' if services != 1 else ''} failed: {why}.")
    return lines


def headline(data: dict) -> str:
    """``synced N scopes`` when all succeeded, else ``synced K of N scopes; F failed`` (and the accounts that
    could not be reached at all, whose scopes were never listed)."""
    scopes = data.get("scopes", [])
    failed_scopes = [s for s in scopes if not s.get("ok", s.get("error") is None)]
    unreached = sorted({e.get("account") or "?" for e in data.get("errors", []) if e.get("region") is None
                        and "/*/*" in str(e.get("scope", ""))})
    if not failed_scopes and not unreached:
        return f"synced {len(scopes)} scopes"
    parts = [f"synced {len(scopes) - len(failed_scopes)} of {len(scopes)} scopes"]
    if failed_scopes:
        parts.append(f"{len(failed_scopes)} failed")
    if unreached:
        parts.append(f"account{'s' if len(unreached) > 1 else ''} {_join(unreached)} could not be reached")
    return "; ".join(parts)


def unreachable_accounts(accounts, timeout_s: float = 5.0) -> list[tuple[Account, str]]:
    """Ask AWS who each account's credentials are (sts:GetCallerIdentity in its first region, in parallel, no
    retries, short timeouts): (account, error text) for each one that cannot be reached. ``accounts``:
    AccountConfig-like (name, profile, regions)."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.config import Config

    from app.awsclient import AccountSession, describe_error

    probe = Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1, "mode": "standard"})

    def reach(account) -> tuple[Account, str] | None:
        region = account.regions[0] if account.regions else "us-east-1"
        try:
            session = AccountSession(account.name, account.profile, list(account.regions)).session()
            session.client("sts", region_name=region, config=probe).get_caller_identity()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the account is the answer
            return Account(account.name, account.profile), describe_error(exc)
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(accounts)))) as pool:
        return [failure for failure in pool.map(reach, accounts) if failure]


def unreached_sentence(failures: list[tuple[Account, str]], *, demo: bool = False) -> str:
    """Why these accounts cannot be reached and what to do, as one sentence (the tail of a refusal): missing
    profiles are named together, every other account with its own cause."""
    missing = [a for a, error in failures if missing_profile(error) is not None]
    parts = []
    if missing:
        names = _join([a.name for a in missing])
        profiles = _join([repr(a.profile) for a in missing if a.profile])
        if demo:
            parts.append(f"the demo's accounts {names} (profiles {profiles}) exist only while its simulated AWS runs: "
                         "run `cloudops demo --serve` with this CLOUDOPS_HOME, keep it running, and rebuild from "
                         "another shell")
        else:
            plural = len(missing) > 1
            parts.append(f"the AWS profile{'s' if plural else ''} {profiles} of {names} {'are' if plural else 'is'} "
                         f"not in your AWS config: add {'them' if plural else 'it'} (`aws configure --profile NAME`, "
                         f"or `cloudops accounts import`) or give the account{'s' if plural else ''} another profile "
                         "(`cloudops accounts add NAME --profile PROFILE`)")
    parts += [f"{a.name} cannot be reached: {cause(error, a, demo=demo)}" for a, error in failures if a not in missing]
    return "; ".join(parts)
