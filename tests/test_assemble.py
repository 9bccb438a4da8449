import io

import pikepdf
import pytest

from renderer.assemble import (
    Assembler,
    OutlineEntry,
    Prepared,
    _go_to_actions,
    _unbound_links,
    page_destination,
)


def test_a_prepared_source_survives_the_cache_and_refuses_garbage():
    objects = [(0, b"<< /Type /Page /Resources %d 0 R >>", (1,), None), (1, b"<< >>", (), b"data")]
    prepared = Prepared(1, objects, [])
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


def two_page_pdf(note: str) -> bytes:
    """Pages that share a resource object, and a string with a percent sign in it."""
    pdf = pikepdf.new()
    shared = pdf.make_indirect(pikepdf.Dictionary(Note=pikepdf.String(note)))
    for _ in range(2):
        pdf.add_blank_page()
        pdf.pages[-1].obj.Shared = shared
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def test_assembled_pages_keep_their_references_strings_and_one_page_tree(tmp_path):
    out = tmp_path / "out.pdf"
    with out.open("wb") as stream:
        assembler = Assembler(stream, 4, [])
        assembler.add(two_page_pdf("100% (of 2 0 R) %d"), {})
        assembler.add(two_page_pdf("other"), {})
        assembler.finish([OutlineEntry("Start", page_destination(1))], {})
    with pikepdf.open(out) as result:
        tree = result.Root.Pages.objgen
        assert [page.obj.Parent.objgen for page in result.pages] == [tree] * 4
        notes = [str(page.obj.Shared.Note) for page in result.pages]
        assert notes == ["100% (of 2 0 R) %d"] * 2 + ["other"] * 2
        assert result.pages[0].obj.Shared.objgen == result.pages[1].obj.Shared.objgen
        assert result.pages[0].obj.Shared.objgen != result.pages[2].obj.Shared.objgen
