import pytest

from renderer.assemble import Prepared, _go_to_actions, _unbound_links


def test_a_prepared_source_survives_the_cache_and_refuses_garbage():
    prepared = Prepared(1, [(0, b"<< /Type /Page >>", None), (1, b"<< >>", b"data")], [])
    assert Prepared.loads(prepared.dumps()) == prepared
    assert Prepared.loads(b"not marshal data") is None


def test_internal_links_become_go_to_actions_to_named_destinations():
    body = (
        b"<< /A << /S /URI /Type /Action /URI (specimen:sdet) >> /Subtype /Link >>"
        b"<< /A << /S /URI /Type /Action /URI (specimen:elsewhere) >> /Subtype /Link >>"
    )
    targets = set()
    assert _go_to_actions(body, targets) == (
        b"<< /A << /D (specimen/sdet) /S /GoTo >> /Subtype /Link >>"
        b"<< /A << /D (specimen/elsewhere) /S /GoTo >> /Subtype /Link >>"
    )
    assert targets == {"specimen/sdet", "specimen/elsewhere"}


def test_a_link_to_a_destination_not_in_the_document_goes_elsewhere_or_nowhere():
    body = (
        b"<< /A << /D (specimen/sdet) /S /GoTo >> /Subtype /Link >>"
        b"<< /A << /D (specimen/elsewhere) /S /GoTo >> /Subtype /Link >>"
        b"<< /A << /D (matter/index) /S /GoTo >> /Subtype /Link >>"
    )
    unbound = {"specimen/elsewhere", "matter/index"}
    assert _unbound_links(body, unbound) == (
        b"<< /A << /D (specimen/sdet) /S /GoTo >> /Subtype /Link >>"
        b"<<  /Subtype /Link >><<  /Subtype /Link >>"
    )
    web = {"specimen:elsewhere": "https://example.org/elsewhere"}.get
    assert _unbound_links(body, unbound, web) == (
        b"<< /A << /D (specimen/sdet) /S /GoTo >> /Subtype /Link >>"
        b"<< /A << /S /URI /URI (https://example.org/elsewhere) >> /Subtype /Link >>"
        b"<<  /Subtype /Link >>"
    )


def test_a_specimen_and_a_page_of_the_compendium_never_share_a_destination():
    body = (
        b"<< /A << /S /URI /Type /Action /URI (specimen:index) >> /Subtype /Link >>"
        b"<< /A << /S /URI /Type /Action /URI (matter:index) >> /Subtype /Link >>"
    )
    assert _go_to_actions(body, set()) == (
        b"<< /A << /D (specimen/index) /S /GoTo >> /Subtype /Link >>"
        b"<< /A << /D (matter/index) /S /GoTo >> /Subtype /Link >>"
    )


def test_an_internal_link_written_another_way_is_never_shipped():
    with pytest.raises(RuntimeError, match="unrecognised internal link"):
        _go_to_actions(b"<< /A << /URI (specimen:sdet) /S /URI >> >>", set())
