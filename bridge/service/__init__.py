"""The use cases: what each SCIM request does, over a directory, as the mapping says.

facade.Service is the entry point (a later step splits it into lookup, render, listing and
writes); create, deprovision, nested, integrity and bulk are its helpers; mapcheck, dircheck and
dirfacts check a mapping against a live directory; discovery renders the RFC 7644 §4 documents.
"""
