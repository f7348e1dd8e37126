"""The guest agent: its wire protocol, the host's client, and (as data) the agent itself.

``agent/`` holds the programs that run inside the guest (``luminaguard_agent.py`` and
``init.py``, standard library only); they are copied into the initramfs, never imported.
"""
