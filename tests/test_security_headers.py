def _directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())


def test_pages_carry_a_strict_content_security_policy(owner_client):
    directives = _directives(owner_client.get("/"))
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


def test_pages_refuse_framing_sniffing_and_leaking_referrers(client, owner):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "Content-Security-Policy" in response


def test_the_page_has_no_inline_script(owner_client):
    page = owner_client.get("/").content.decode()
    assert "<script>" not in page
    assert " on" not in page.split("<body", 1)[1].split(">", 1)[0]
