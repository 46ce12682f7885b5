from agent.llm import serve_if_worker

serve_if_worker()  # a PyInstaller bundle has no `python -c`: the offline model's worker is this executable again

from app.interfaces.cli import main  # noqa: E402

main()
