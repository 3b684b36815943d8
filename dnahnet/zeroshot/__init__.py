"""Zero-shot evaluations: gene essentiality by knockout cassette, variant fitness from HGVS edits."""
