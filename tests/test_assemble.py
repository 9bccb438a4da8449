import pytest

from renderer.assemble import Prepared, _retarget_links


def test_a_prepared_source_survives_the_cache_and_refuses_garbage():
    prepared = Prepared(1, [(0, b"<< /Type /Page >>", None), (1, b"<< >>", b"data")], [])
    assert Prepared.loads(prepared.dumps()) == prepared
    assert Prepared.loads(b"not marshal data") is None


def test_internal_links_become_go_to_actions_or_plain_boxes():
    body = (
        b"<< /A << /S /URI /Type /Action /URI (specimen:sdet) >> /Subtype /Link >>"
        b"<< /A << /S /URI /Type /Action /URI (specimen:elsewhere) >> /Subtype /Link >>"
    )
    assert _retarget_links(body, {"specimen/sdet": 7}) == (
        b"<< /A << /D (specimen/sdet) /S /GoTo >> /Subtype /Link >><<  /Subtype /Link >>"
    )


def test_a_specimen_and_a_page_of_the_compendium_never_share_a_destination():
    body = (
        b"<< /A << /S /URI /Type /Action /URI (specimen:index) >> /Subtype /Link >>"
        b"<< /A << /S /URI /Type /Action /URI (matter:index) >> /Subtype /Link >>"
    )
    assert _retarget_links(body, {"specimen/index": 3, "matter/index": 9}) == (
        b"<< /A << /D (specimen/index) /S /GoTo >> /Subtype /Link >>"
        b"<< /A << /D (matter/index) /S /GoTo >> /Subtype /Link >>"
    )


def test_an_internal_link_written_another_way_is_never_shipped():
    with pytest.raises(RuntimeError, match="unrecognised internal link"):
        _retarget_links(b"<< /A << /URI (specimen:sdet) /S /URI >> >>", {"specimen/sdet": 7})
