"""The shared API framework: the error catalogue, the base views and strict inputs, the one
exception handler, the middleware, pagination and the OpenAPI schema. It knows no app: what an
API key is and how a request is admitted come from the settings (`API_ADMISSION`)."""
