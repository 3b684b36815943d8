"""The README screenshot (docs/view.png): `dnahnet view` of a demo checkpoint over hg19 chr22, in headless Chromium.

    python docs/view_screenshot.py runs/demo/train/latest runs/view-shot docs/view.png

Boundaries and per-base scores of slice 4,890,000-4,930,000 (the held-out test split), moved onto hg19 with the
RefSeq genes/exons and CpG islands (`browser_bundle`, as the demo does), then 8 kb picked in the region box.
Needs Debian's chromium and playwright (pip install playwright; never `playwright install`).
"""
import sys
from pathlib import Path
from dnahnet.data.demo import demo_annotation_paths, demo_genome_path, demo_manifest
from dnahnet.data.genome import Genome
from dnahnet.infer.boundaries import export_boundaries
from dnahnet.infer.model import load
from dnahnet.infer.scoring import score_regions
from dnahnet.infer.sharding import Region
from dnahnet.io.viewer import browser_bundle

ck, scratch, png = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
scratch.mkdir(parents=True, exist_ok=True)
model = load(ck, device="cpu")
g = Genome(demo_genome_path())
chrom, a, b = "chr22_slice", 4_890_000, 4_930_000
e = export_boundaries(model, g, [(chrom, a, b)], scratch / "boundaries.bed", scratch / "p.bedGraph")
score_regions(model, g, [Region(chrom, a, b, "test")], scratch / "s.tsv", scratch / "bits.bedGraph")
seq = demo_manifest()["sequence"]
off = int(seq["offset"])
ann = demo_annotation_paths()
paths = browser_bundle(scratch / "browser", chunks=scratch / "boundaries.bed", probs=e.probs, per_base=scratch / "bits.bedGraph",
                       annotations={k: ann[k] for k in ("RefSeqGene", "RefSeqExon", "CpGIsland")},
                       chrom_map={chrom: ("chr22", off)}, sizes={"chr22": 51_304_566}, region=("chr22", a + off, b + off),
                       title="dnahnet view: demo cpu-small checkpoint, hg19 chr22 (held-out test split)")
from playwright.sync_api import sync_playwright
errors = []
with sync_playwright() as pw:
    br = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = br.new_page(viewport={"width": 1090, "height": 420})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(Path(paths["view"]).resolve().as_uri())
    page.fill("#locus", f"chr22:{a + off + 14_001:,}-{a + off + 22_000:,}")
    page.press("#locus", "Enter")
    print(page.eval_on_selector_all("g.track", "gs => gs.map(g => [g.dataset.name, +g.dataset.drawn])"))
    page.screenshot(path=png, full_page=True)
    br.close()
print("console errors:", errors, paths)
