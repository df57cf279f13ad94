"""The lab recording app (``mecg app`` / ``mecg-app``): a supervisor's window over the recorder engine.

Modules: :mod:`~mecg.app.lab` (devices, monitor and recorder, Qt-free), :mod:`~mecg.app.main_window`,
:mod:`~mecg.app.streams_panel`, :mod:`~mecg.app.live_view`, :mod:`~mecg.app.recording_panel`,
:mod:`~mecg.app.health`, :mod:`~mecg.app.session_check`, :mod:`~mecg.app.settings`,
:mod:`~mecg.app.worker`, :mod:`~mecg.app.main`. See docs/app.md.
"""
