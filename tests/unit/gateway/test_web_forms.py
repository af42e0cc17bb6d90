"""The playground form derived from Cog's OpenAPI schema, and the encrypted session cookie."""

from __future__ import annotations

from pathlib import Path

from services.gateway.web.forms import form_fields, output_kind
from services.gateway.web.sessions import SessionCodec, csrf_matches, load_key

SCHEMA = {
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "required": ["prompt", "image"],
                "properties": {
                    "image": {"type": "string", "format": "uri", "x-order": 1, "description": "A picture"},
                    "prompt": {"type": "string", "x-order": 0, "description": "What to draw"},
                    "steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20, "x-order": 2},
                    "scale": {"type": "number", "default": 7.5, "x-order": 3},
                    "tiled": {"type": "boolean", "default": False, "x-order": 4},
                    "size": {"allOf": [{"$ref": "#/components/schemas/size"}], "default": 512, "x-order": 5},
                    "api_key": {"type": "string", "format": "password", "writeOnly": True, "x-cog-secret": True,
                                "x-order": 6},
                    "tags": {"type": "array", "items": {"type": "string"}, "default": ["a", "b"], "x-order": 7},
                    "masks": {"type": "array", "items": {"type": "string", "format": "uri"}, "x-order": 8},
                    "name": {"type": "string", "maxLength": 20, "x-order": 9},
                },
            },
            "size": {"type": "integer", "enum": [256, 512], "title": "size", "description": "An enumeration."},
            "Output": {"type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator",
                       "x-cog-array-display": "concatenate"},
        }
    }
}


def test_fields_follow_x_order_with_the_control_each_type_needs() -> None:
    fields = {f.name: f for f in form_fields(SCHEMA)}
    assert [f.name for f in form_fields(SCHEMA)] == [
        "prompt", "image", "steps", "scale", "tiled", "size", "api_key", "tags", "masks", "name"]
    assert fields["prompt"].kind == "textarea" and fields["prompt"].required
    assert fields["image"].kind == "file" and fields["image"].files and fields["image"].description == "A picture"
    assert (fields["steps"].kind, fields["steps"].minimum, fields["steps"].maximum, fields["steps"].step) == (
        "range", 1.0, 50.0, "1")
    assert fields["scale"].kind == "number" and fields["scale"].step == "any" and fields["scale"].default_text == "7.5"
    assert fields["tiled"].kind == "checkbox" and not fields["tiled"].required
    assert fields["size"].kind == "select" and fields["size"].choices == [256, 512]
    assert fields["size"].value_type == "integer" and fields["size"].default == 512
    assert fields["size"].description == ""  # not the enum type's "An enumeration."
    assert fields["api_key"].kind == "secret"
    assert fields["tags"].kind == "list" and fields["tags"].default_text == "a\nb" and not fields["tags"].files
    assert fields["masks"].kind == "list" and fields["masks"].files
    assert fields["name"].kind == "text"


def test_output_kind_recognises_streamed_text() -> None:
    assert output_kind(SCHEMA) == "stream"
    assert output_kind({"components": {"schemas": {"Output": {"type": "string", "format": "uri"}}}}) == "value"
    assert output_kind(None) == "value"
    assert form_fields({}) == []


def test_session_cookie_round_trips_and_refuses_tampering(tmp_path: Path) -> None:
    codec = SessionCodec(load_key("", str(tmp_path)), max_age_seconds=3600)
    cookie, session = codec.issue("cwk_secret")
    assert "cwk_secret" not in cookie
    read = codec.read(cookie)
    assert read == session and read.token == "cwk_secret"
    assert csrf_matches(read, session.csrf) and not csrf_matches(read, "other") and not csrf_matches(read, None)
    assert codec.read(cookie[:-4] + "AAAA") is None
    assert codec.read("garbage") is None and codec.read(None) is None
    # The key file is made once and reused, so every gateway process of an installation reads the same one.
    again = SessionCodec(load_key("", str(tmp_path)), max_age_seconds=3600)
    assert again.read(cookie) == session
    other = SessionCodec(load_key("configured secret", str(tmp_path)), max_age_seconds=3600)
    assert other.read(cookie) is None


def test_expired_session_is_refused(tmp_path: Path) -> None:
    codec = SessionCodec(load_key("k", str(tmp_path)), max_age_seconds=0)
    cookie, _ = codec.issue("cwk_secret")
    import time

    time.sleep(1.1)
    assert codec.read(cookie) is None


def test_every_template_compiles() -> None:
    from services.gateway.web.routes import HERE, templates

    names = sorted(path.name for path in (HERE / "templates").glob("*.html"))
    assert "model.html" in names
    for name in names:
        templates.env.get_template(name)


def test_readme_markdown_never_lets_html_or_script_links_through() -> None:
    from services.gateway.web.markdown import render_markdown

    html = str(render_markdown("# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [ok](https://a.example)"))
    assert "<h1>Title</h1>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html and 'href="https://a.example"' in html
