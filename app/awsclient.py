"""The one seam to boto3: sessions per configured account and clients with the retry policy.

Everything that talks to AWS (sync collectors, and later the executor) gets its clients here, so the
retry mode, timeouts and the endpoint override are decided once. boto3 honours ``AWS_ENDPOINT_URL``
itself, which is how the tests and the demo point every call at moto on 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
from botocore.config import Config
from botocore.exceptions import (BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound, SSOError,
                                 TokenRetrievalError)
from botocore.loaders import create_loader

from app import credentials

RETRY_ATTEMPTS = 8
# Called as hook(client, account_name) for every new client: the seam for instrumentation and for
# fault injection in tests (throttling, AccessDenied, timeouts via botocore events). Empty normally.
CLIENT_HOOKS: list[Callable[[object, str], None]] = []


_SHARED_LOADER = create_loader()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('ThrottlingException', 'AccessDenied', ...), else ''."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description: the AWS error code and message, or the exception type; credential
    problems an operator fixes by hand (an SSO login, a missing profile) as one sentence saying how, naming
    the profile when the session that met them tagged it (``cloudops_profile``, see AccountSession)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}".strip()
    profile = getattr(exc, "cloudops_profile", None)
    if isinstance(exc, (SSOError, TokenRetrievalError)):
        # botocore's SSOTokenLoadError (no cached token), UnauthorizedSSOTokenError (expired or revoked) and
        # TokenRetrievalError (the sso-session's refresh failed) all mean the same thing to an operator.
        login = f"aws sso login --profile {profile}" if profile else "aws sso login --profile <the account's profile>"
        whose = f"of profile {profile} " if profile else ""
        return f"the AWS SSO login {whose}has expired or was never made: run `{login}`, then try again"
    if isinstance(exc, ProfileNotFound):
        missing = exc.kwargs.get("profile") or profile
        return (f"the AWS profile {missing!r} is not in the AWS config file ({aws_config_file()}): add it "
                "(`cloudops accounts import` lists the profiles there) or give the account another profile")
    if isinstance(exc, NoCredentialsError):
        return ("no AWS credentials were found" + (f" for profile {profile}" if profile else "") +
                ": add keys with `cloudops accounts add NAME --keys`, or a profile (`cloudops accounts import`)")
    return f"{type(exc).__name__}: {exc}"


def aws_config_file() -> str:
    """The AWS config file boto3 and the AWS CLI read: AWS_CONFIG_FILE, else ~/.aws/config."""
    import os

    return os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")


def _tag_profile(exc: BaseException, profile: str | None) -> None:
    """Remember on ``exc`` which profile met it, for describe_error's sentence (first tag wins)."""
    if profile and getattr(exc, "cloudops_profile", None) is None:
        try:
            exc.cloudops_profile = profile  # type: ignore[attr-defined]
        except AttributeError:
            pass


def _tag_refresh_errors(credentials, profile: str | None) -> None:
    """Credentials that fetch themselves later (SSO, assumed roles) fail inside whatever API call needs them
    first, far from the profile's name: wrap their refresh so that an error there names the profile. For
    every service alike (DynamoDB resolves credentials before botocore's after-call-error event)."""
    refresh = getattr(credentials, "_refresh_using", None)
    if not profile or not callable(refresh) or getattr(refresh, "_cloudops_tagged", False):
        return

    def tagged(*args, **kwargs):
        try:
            return refresh(*args, **kwargs)
        except BotoCoreError as exc:
            _tag_profile(exc, profile)
            raise

    tagged._cloudops_tagged = True  # type: ignore[attr-defined]
    credentials._refresh_using = tagged


def _new_session(**kwargs) -> boto3.Session:
    """A boto3 session that reads botocore's service models through one process-wide loader.

    Each botocore session otherwise parses every service's JSON model again (EC2's alone is several
    MB): with four accounts that was a fifth of an unchanged re-sync's time. The models are immutable
    data, so sharing the loader's cache across sessions is safe; credentials and config stay per session.
    """
    session = boto3.Session(**kwargs)
    session._session.register_component("data_loader", _SHARED_LOADER)
    return session


def client_config(max_pool: int = 16) -> Config:
    # Adaptive mode adds client-side rate limiting on top of exponential backoff: the answer to
    # throttling, which is the top complaint of every multi-account inventory tool.
    return Config(retries={"mode": "adaptive", "max_attempts": RETRY_ATTEMPTS}, connect_timeout=5, read_timeout=30,
                  max_pool_connections=max_pool, user_agent_extra="cloudops-agent")


@dataclass
class AccountSession:
    """One configured account: a boto3 session (profile, stored keys, or the default chain)."""

    name: str
    profile: str | None
    regions: list[str]
    account_id: str | None = None
    _session: boto3.Session | None = field(default=None, repr=False)
    _clients: dict[tuple[str, str], object] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _keys: credentials.AccessKeys | None = field(default=None, repr=False)

    def session(self) -> boto3.Session:
        with self._lock:
            if self._session is None:
                keys = credentials.load(self.name)
                try:
                    if keys is not None:
                        self._session = _new_session(aws_access_key_id=keys.access_key_id,
                                                     aws_secret_access_key=keys.secret_access_key,
                                                     aws_session_token=keys.session_token)
                    else:
                        self._session = _new_session(profile_name=self.profile) if self.profile else _new_session()
                    self._keys = keys
                    # Resolve credentials once, here: botocore's credential chain is not thread-safe, and
                    # concurrent first clients of an assume-role profile can trip InfiniteLoopConfigError.
                    _tag_refresh_errors(self._session.get_credentials(), self.profile)
                except BotoCoreError as exc:
                    _tag_profile(exc, self.profile)
                    raise
            return self._session

    def client(self, service: str, region: str):
        """A cached client per (service, region). Clients are thread-safe once made; making them is
        not (boto3 sessions are not), so creation is serialised per account."""
        key = (service, region)
        session = self.session()
        with self._lock:
            cached = self._clients.get(key)
            if cached is None:
                cached = session.client(service, region_name=region, config=client_config())
                for hook in CLIENT_HOOKS:
                    hook(cached, self.name)
                self._clients[key] = cached
            return cached

    def resolve_account_id(self) -> str:
        if self.account_id is None:
            region = self.regions[0] if self.regions else "us-east-1"
            self.account_id = self.client("sts", region).get_caller_identity()["Account"]
        return self.account_id


class SessionPool:
    """Account sessions (and their clients) kept across the sync runs of one long-lived process.

    The tray app syncs every 15 minutes; making every boto3 session and client again each time cost
    more than the listing itself on an unchanged estate. A session is reused only while its account's
    configuration (name, profile, regions, account id) and its keyring keys are what it was made with;
    otherwise a new one replaces it. Profile-based credentials refresh themselves (assumed roles, SSO).
    """

    def __init__(self) -> None:
        self._sessions: dict[str, AccountSession] = {}
        self._lock = threading.Lock()

    def get(self, name: str, profile: str | None, regions: list[str], account_id: str | None = None) -> AccountSession:
        with self._lock:
            cached = self._sessions.get(name)
            if (cached is not None and cached.profile == profile and cached.regions == list(regions)
                    and (account_id is None or cached.account_id == account_id)
                    and cached._session is not None and cached._keys == credentials.load(name)):
                return cached
            fresh = AccountSession(name, profile, list(regions), account_id)
            self._sessions[name] = fresh
            return fresh

    def for_call(self, name: str, profile: str | None, region: str) -> AccountSession:
        """The account's session for running one call: the one the sync made when its profile and keys
        match (whatever regions it syncs), else a new one kept for the next call."""
        with self._lock:
            cached = self._sessions.get(name)
            if cached is not None and cached.profile == profile and cached._keys == credentials.load(name):
                return cached
        return self.get(name, profile, [region])

