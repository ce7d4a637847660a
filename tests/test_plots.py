"""Drawing leaves the user's matplotlib alone: no backend switch at import, no pyplot figures."""

import os
import subprocess
import sys
import textwrap


def test_plots_leave_the_backend_and_pyplot_alone(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")  # the user's choice, not Agg
        import pandas as pd
        import qrobust.plots as plots
        assert matplotlib.get_backend().lower() == "svg", matplotlib.get_backend()
        rows = [dict(model=m, corruption="flip", alpha=a, learning_rate=0.01, seed=s, epoch=1, loss=0.5, diverged=False,
                     train_acc=1 - a, train_acc_clean=0.9, val_acc=0.9 - a / 2, memorization=a)
                for m in ("qnn", "mlp") for a in (0.0, 0.5) for s in (0, 1)]
        path = plots.plot_noise_response(pd.DataFrame(rows), r"{tmp_path / 'fig.png'}")
        assert matplotlib.get_backend().lower() == "svg", matplotlib.get_backend()
        assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
        print(path.stat().st_size)
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout.split()[-1]) > 10_000  # a real PNG was written
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
