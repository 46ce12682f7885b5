"""Access keys typed into the app live in the OS keyring, never in a file or a log.

Profiles (static keys, role_arn + source_profile, SSO) need nothing from here: boto3 resolves them.
On a machine with no keyring backend, storing keys fails with a message that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE = "cloudops-agent"


class NoKeyringError(RuntimeError):
    pass


@dataclass(frozen=True)
class AccessKeys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"AccessKeys(access_key_id={self.access_key_id[:4]}…, secret_access_key=***)"


def _keyring():
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or (type(backend).__name__ == "ChainerBackend" and not backend.backends):
        raise NoKeyringError("no OS keyring backend is available: use an AWS profile instead "
                             "(`aws configure --profile NAME`, then `cloudops accounts add NAME --profile NAME`), "
                             "or install a keyring backend (e.g. gnome-keyring, or `pip install keyrings.alt`)")
    return keyring


def store(account: str, keys: AccessKeys) -> None:
    kr = _keyring()
    kr.set_password(SERVICE, f"{account}:access_key_id", keys.access_key_id)
    kr.set_password(SERVICE, f"{account}:secret_access_key", keys.secret_access_key)
    if keys.session_token:
        kr.set_password(SERVICE, f"{account}:session_token", keys.session_token)


def load(account: str) -> AccessKeys | None:
    """Keys stored for ``account``, or None (also when there is no keyring at all)."""
    try:
        kr = _keyring()
        key_id = kr.get_password(SERVICE, f"{account}:access_key_id")
        secret = kr.get_password(SERVICE, f"{account}:secret_access_key")
    except NoKeyringError:
        return None
    except Exception:  # noqa: BLE001 - a broken backend must not stop profile-based accounts
        return None
    if not key_id or not secret:
        return None
    return AccessKeys(key_id, secret, kr.get_password(SERVICE, f"{account}:session_token"))


def forget(account: str) -> None:
    try:
        kr = _keyring()
    except NoKeyringError:
        return
    for part in ("access_key_id", "secret_access_key", "session_token"):
        try:
            kr.delete_password(SERVICE, f"{account}:{part}")
        except Exception:  # noqa: BLE001 - absent is fine
            pass
