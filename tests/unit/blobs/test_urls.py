from libs.blobs import absolutize_outputs, output_ref


def test_references_at_any_depth_become_urls_on_the_given_origin() -> None:
    output = {"images": [output_ref("p1/0.png"), "plain text"], "mask": output_ref("p1/1.png"), "n": 3}
    assert absolutize_outputs(output, "http://127.0.0.1:8000/") == {
        "images": ["http://127.0.0.1:8000/v1/outputs/p1/0.png", "plain text"],
        "mask": "http://127.0.0.1:8000/v1/outputs/p1/1.png",
        "n": 3,
    }


def test_values_without_references_are_unchanged() -> None:
    assert absolutize_outputs(["a", 1, None, {"b": 2.5}], "http://x") == ["a", 1, None, {"b": 2.5}]
