"""The review web app: evaluations' videos and metrics in a browser, and human preference studies.

Served by ``vid2vid review`` (FastAPI + uvicorn, both shipped with Prefect); votes live in a SQL database
through SQLAlchemy (SQLite under the runs root by default, Postgres in the cluster form). Never imports
Prefect at module level: the artifact publisher loads it only when it publishes.
"""
