"""Examples of the language page (shared/design/policy-language.md), verbatim.

The shared folder is not part of the repository, so the tests that hold the
engine to the page keep its examples here, once.
"""

# Section 1 of the language page, verbatim.
SECTION_1_EXAMPLE = """\
# policies/alice.policy
owner "alice"                                   # whose resources these rules govern

group family = ["bob@example.com", "carol@example.com"]

# Where claims must come from, and in which token format; need_info uses this.
claims email, email_verified from "https://idp.example.com" as id_token

# Family may view and download my photo albums.
permit view, download
  on type "photo-album"
  when claims.email in family and claims.email_verified == true

# My doctor's clinic app may read my lab results, for 30 days after the grant.
permit read
  on name like "health/labs/*"
  when claims.role == "physician" and client.id == "clinic-app"
  for 30d

# Coworkers must ask me first; I approve or refuse each request.
ask view
  on type "photo-album"
  when claims.email ends with "@acme.example"

# Nothing under private/ leaves my own devices, whatever else says.
forbid any scope
  on name like "private/*"
  unless client.id in ["alice-phone", "alice-laptop"]

# A one-off share that stops at the end of the year.
permit view on name "summer-2026" when claims.email == "dave@example.com" until 2026-12-31T23:59:59Z
"""
