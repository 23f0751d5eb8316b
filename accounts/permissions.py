from rest_framework.permissions import BasePermission

from api.errors import ApiError, E


class HasRequiredScope(BasePermission):
    """The scope a view names for the request's method must be on the API key."""

    def has_permission(self, request, view) -> bool:
        method = request.method.lower()
        if method not in view.http_method_names or not hasattr(view, method):
            return True  # the view answers 405 method_not_allowed itself
        scope = view.required_scope_for(request.method)
        if scope is None:
            # Every method a view serves must name its scope; a forgotten one is refused.
            raise ApiError(E.insufficient_permissions, reason="No scope allows this operation.")
        if scope not in request.auth.scopes:
            raise ApiError(
                E.insufficient_permissions,
                reason=f"This API key lacks the '{scope}' scope.",
            )
        return True
