"""The ``questions`` table of runs.db (``questions.QuestionBook`` keeps it)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    run_id TEXT NOT NULL, question_id TEXT NOT NULL, step_id TEXT, server TEXT NOT NULL,
    state TEXT NOT NULL, message TEXT NOT NULL, form TEXT NOT NULL, asked REAL NOT NULL,
    expires REAL NOT NULL, decided REAL, who TEXT, PRIMARY KEY (run_id, question_id)
);
"""
