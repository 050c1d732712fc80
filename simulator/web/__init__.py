"""The web view, the customer web form and the JSON API (Starlette and uvicorn).

Owns the app and its routes, the pages, the API and its OpenAPI document, the
form's validation, the inline SVG chart geometry, the templates and the embedded
server. It reads through reports/ and submits through delivery/'s writer; it must
never import the SMTP listener, the service wiring or the commands.
"""
