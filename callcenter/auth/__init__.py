"""Who is asking: users, passwords, API tokens, panel sessions and the log-in rate limit (issue 10).

`users.py` manages users and tokens (the `callcenter users|tokens` commands); `service.py`
authenticates requests (bearer token or session cookie) and logs people in and out;
`secrets_.py` hashes passwords (argon2id) and tokens (SHA-256). What a person may do once known
is the domain's rule (callcenter/domain/access.py). Nothing secret is stored or logged in clear.
"""
from .service import AuthError, Authenticator
from .users import UserAdmin

__all__ = ["AuthError", "Authenticator", "UserAdmin"]
