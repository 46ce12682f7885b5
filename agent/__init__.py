"""The agent stack: playbooks, retrieval, classification, planning, risk; shared by the server and the
client's offline fallback."""

__version__ = "0.1.0"
