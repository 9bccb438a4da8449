from renderer.cache import RENDERING_MODULES, RenderCache, inputs_fingerprint
from renderer.layouts import Layout
from tests.conftest import modules_after


def test_rendering_loads_only_the_fingerprinted_modules():
    loaded = modules_after("import renderer.render, renderer.engine, renderer.matter")
    ours = {name.split(".", 1)[1] if "." in name else "__init__"
            for name in loaded if name.split(".")[0] == "renderer"}  # fmt: skip
    assert ours <= set(RENDERING_MODULES)


def test_the_fingerprint_follows_the_layout_files(tmp_path):
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "dossier.html.j2").write_text("<p>one</p>")
    before = inputs_fingerprint(Layout.find(str(layout)))
    (layout / "dossier.css").write_text("p { color: black }")
    assert inputs_fingerprint(Layout.find(str(layout))) != before


def test_a_damaged_entry_is_discarded(tmp_path):
    cache = RenderCache(tmp_path)
    cache.put("ab" * 32, b"%PDF-1.7 body")
    assert cache.get("ab" * 32) == b"%PDF-1.7 body"
    path = cache.path("ab" * 32)
    path.write_bytes(path.read_bytes()[:-3])
    assert cache.get("ab" * 32) is None
    assert not path.exists()
