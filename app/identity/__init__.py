"""Who someone is at this AS: browser sessions (:mod:`app.identity.sessions`), upstream OpenID
Providers (:mod:`app.identity.providers`: discovery, the code flow, the ID token) and the
accounts they sign in to, keyed by (issuer, subject) (:mod:`app.identity.federation`)."""
