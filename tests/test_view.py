"""`dnahnet view`: the page loads in a real headless browser with no console error and every track draws."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from dnahnet.infer.boundaries import export_boundaries
from dnahnet.infer.scoring import score_regions
from dnahnet.infer.sharding import Region
from dnahnet_cli.main import main
from infer_fixtures import checkpoints, chr22, small_genome, tiny, tiny2  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def tracks(tiny2, tiny, small_genome, tmp_path):
    """Chunks (bgzip + tabix), p_t (bigWig), per-base bits (bedGraph) and an annotation over chrC."""
    kw = dict(window=512, context=128)
    export_boundaries(tiny2, small_genome, [("chrC", 0, 3000)], tmp_path / "c.bed.gz", tmp_path / "p.bw", **kw)
    score_regions(tiny, small_genome, [Region("chrC", 0, 3000, "chrC")], tmp_path / "s.tsv", tmp_path / "bits.bedGraph", **kw)
    genes = tmp_path / "genes.bed"
    genes.write_text("chrC\t100\t900\tGENE1\t0\t+\nchrC\t1500\t2600\tGENE2\t0\t-\n")
    return tmp_path


def view_args(folder, genome, *extra) -> list[str]:
    return ["view", "--region", "chrC:1-3,000", "--out", str(folder / "view.html"), "--boundaries", str(folder / "c.bed.gz"),
            "--probs", str(folder / "p.bw"), "--per-base", str(folder / "bits.bedGraph"), "--annotation",
            str(folder / "genes.bed"), "--genome", str(genome.path), *extra]


def page_data(path) -> dict:
    text = path.read_text()
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S).group(1))


def test_page_holds_every_track_of_the_region_and_needs_no_network(capsys, tracks, small_genome):
    assert main(["view", "--help"]) == 0
    assert "Example: dnahnet view" in " ".join(capsys.readouterr().out.split()).replace(" │ ", " ")
    assert main(view_args(tracks, small_genome)) == 0
    assert "wrote" in capsys.readouterr().err
    html = (tracks / "view.html").read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    data = page_data(tracks / "view.html")
    names = [t["name"] for t in data["tracks"]]
    assert names == ["chunks stage1", "chunks stage2", "p_t stage1", "p_t stage2", "bits per base", "genes"]
    assert data["tracks"][0]["features"][0][:2] == [0, data["tracks"][0]["features"][1][0]]  # stage-1 chunks tile chrC
    p1 = data["tracks"][2]["runs"]
    assert len(p1) == 1 and p1[0][:2] == [0, 1] and len(p1[0][2]) == 3000  # p_t at every base (chrC has no N)


def test_mismatched_contig_names_are_refused_naming_the_file(capsys, tracks, small_genome):
    ens = tracks / "ensembl.bed"
    ens.write_text("22\t100\t900\tGENE1\n21\t5\t50\tGENE2\n")
    argv = view_args(tracks, small_genome)
    argv[argv.index(str(tracks / "genes.bed"))] = str(ens)
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "ensembl.bed" in lines[0] and "no contig name matches the genome: the file has 22, 21" in lines[0]
    assert not (tracks / "view.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="headless browser check needs Debian's chromium (apt-get install chromium)")
def test_page_draws_every_track_in_headless_chromium_without_console_errors(capsys, tracks, small_genome):
    sync_api = pytest.importorskip("playwright.sync_api", reason="headless browser check needs playwright (pip install playwright)")
    assert main(view_args(tracks, small_genome)) == 0
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 600})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tracks / "view.html").as_uri())
        drawn = page.eval_on_selector_all("g.track", "gs => gs.map(g => [g.dataset.name, +g.dataset.drawn])")
        assert [name for name, _ in drawn][:2] == ["chunks stage1", "chunks stage2"]
        assert all(n > 0 for _, n in drawn), drawn
        assert page.input_value("#locus") == "chrC:1-3,000"
        page.fill("#locus", "chrC:1,401-1,600")  # the region picker
        page.press("#locus", "Enter")
        assert page.input_value("#locus") == "chrC:1,401-1,600"
        zoomed = dict(page.eval_on_selector_all("g.track", "gs => gs.map(g => [g.dataset.name, +g.dataset.drawn])"))
        assert 0 < zoomed["chunks stage1"] < dict(drawn)["chunks stage1"] and zoomed["genes"] == 1
        page.fill("#locus", "chrA:1-100")
        page.press("#locus", "Enter")
        assert "holds chrC only" in page.inner_text("#msg")
        page.click("#zout")
        assert page.input_value("#locus") == "chrC:1,301-1,700"
        browser.close()
    assert errors == []


def test_browser_bundle_moves_tracks_onto_assembly_coordinates(tracks, small_genome):
    """The demo's path: slice coordinates + offset = assembly coordinates, in browser formats, with a page."""
    import pysam

    from dnahnet.io.bed import read_bedgraph
    from dnahnet.io.bigwig import read_bigwig
    from dnahnet.io.tracks import relocate_track
    from dnahnet.io.viewer import browser_bundle

    off = 37_400_000
    plain_chunks = tracks / "c.bed"
    relocate_track(tracks / "c.bed.gz", plain_chunks, {"chrC": ("chrC", 0)})  # offset 0: a plain copy
    paths = browser_bundle(tracks / "browser", chunks=plain_chunks, probs=[],
                           per_base=tracks / "bits.bedGraph", annotations={"genes": tracks / "genes.bed"},
                           chrom_map={"chrC": ("chr22", off)}, sizes={"chr22": 51_304_566},
                           region=("chr22", off, off + 3000))
    with pysam.TabixFile(paths["chunks"]) as tbx:
        moved = [line.split("\t") for line in tbx.fetch("chr22")]
    original = [line.split("\t") for line in open(plain_chunks) if not line.startswith("track")]
    assert [(int(m[1]), int(m[2])) for m in moved] == [(int(o[1]) + off, int(o[2]) + off) for o in original]
    pos, val = read_bigwig(paths["bits"], "chr22")
    text = read_bedgraph(tracks / "bits.bedGraph")
    assert np.array_equal(pos, text.start + off) and np.allclose(val, text.value, rtol=2e-6)
    assert open(paths["genes"]).read().splitlines()[1] == f"chr22\t{100 + off}\t{900 + off}\tGENE1\t0\t+"
    data = page_data(tracks / "browser" / "view.html")
    assert data["chrom"] == "chr22" and data["start"] == off and [t["name"] for t in data["tracks"]][-1] == "genes"
