"""Long jobs report progress in log files: plain lines with done/total, rate and the end."""

from dnahnet_cli.progress import progress


def test_log_lines_count_the_work_and_always_report_the_end(capsys):
    with progress(1000, "bases", "boundaries", every_s=0.0) as advance:
        advance(250)
        advance(750)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("boundaries: 250 / 1,000 bases (25%)") and "min left" in lines[0]
    assert lines[-1].startswith("boundaries: 1,000 / 1,000 bases (100%)") and "left" not in lines[-1]


def test_nothing_is_printed_between_intervals_and_nothing_for_no_work(capsys):
    with progress(1000, "bases", "score", every_s=3600.0) as advance:
        advance(10)
    assert capsys.readouterr().err.count("\n") == 1  # only the closing line
    with progress(0, "bases", "score"):
        pass
    assert capsys.readouterr().err == ""
