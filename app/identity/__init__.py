"""Who someone is at this AS: browser sessions (:mod:`app.identity.sessions`)."""
