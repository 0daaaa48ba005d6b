"""The use cases: what each SCIM request does, over a directory, as the mapping says.

facade.Service is the entry point, thin over collaborators of one job each: lookup (find,
id <-> DN), render (entry -> resource), listing (list, search, paging) and writes (modify,
rename, undo, uniqueness).  create, deprovision and nested are helpers that take one of those,
never the Service; integrity takes the directory; bulk runs use cases on a Service.  mapcheck,
dircheck and dirfacts check a mapping against a live directory; discovery renders the RFC 7644
§4 documents.
"""
