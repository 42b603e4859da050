"""FastAPI dependencies: the context and the caller's role (401 without a known token, 403 below the role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.api.auth import Caller, identify
from controller.api.context import ApiContext

_bearer = HTTPBearer(auto_error=False, description="a token from [[api.tokens]] (evsite config new-token)")


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def _caller(request: Request, cred: HTTPAuthorizationCredentials | None) -> Caller:
    challenge = {"WWW-Authenticate": "Bearer"}
    if cred is None:
        raise HTTPException(401, "missing bearer token (header 'Authorization: Bearer <token>')", headers=challenge)
    caller = identify(cred.credentials, context(request).config().api.tokens)
    if caller is None:
        raise HTTPException(401, "unknown bearer token", headers=challenge)
    return caller


def reader(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    return _caller(request, cred)


def operator(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    caller = _caller(request, cred)
    if not caller.may("operator"):
        raise HTTPException(403, f"needs the operator role; token {caller.name!r} has the {caller.role} role")
    return caller


Ctx = Annotated[ApiContext, Depends(context)]
Reader = Annotated[Caller, Depends(reader)]
Operator = Annotated[Caller, Depends(operator)]
