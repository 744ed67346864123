"""benchmarks.method_cost: one interleaved run of several models, their parameters, MACs and times."""
from helpers import one_thread_fixture

one_thread = one_thread_fixture()


def test_method_cost_rows_and_table(capsys):
    from benchmarks.method_cost import main, parse_model
    assert parse_model('A=NODEVDSR_S') == ('A', 'NODEVDSR_S') and parse_model('VDSRt_S') == ('VDSRt_S', 'VDSRt_S')
    main(['--model', 'NODE=NODEVDSR_S', 'VDSRt_S', '--scales', '2', '4', '--side', '16', '--repeat', '1'])
    out = capsys.readouterr().out
    # NODE-VDSR-S: x2 takes 1 rk4 step (4 evaluations of f), x4 3 steps (12); VDSR+t-S one evaluation
    node = next(line for line in out.splitlines() if line.startswith('| NODE |'))
    vdsrt = next(line for line in out.splitlines() if line.startswith('| VDSRt_S |'))
    cells = [c.strip() for c in node.split('|')[1:-1]]
    assert cells[1] == '57,539' and cells[2] == '229,248' and cells[4] == '687,744'
    assert [c.strip() for c in vdsrt.split('|')[1:-1]][2] == '57,312'
