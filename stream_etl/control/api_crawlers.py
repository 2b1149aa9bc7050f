"""REST routes of crawlers, their runs and custom classifiers (added to the app by
:func:`stream_etl.control.api.create_app`).

``POST /crawlers/{name}/runs`` starts a run in a background thread of the API server and
answers 202 with the RUNNING run; ``GET /crawler-runs/{id}`` tells when it ended.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from stream_etl.control.api import Guards
from stream_etl.control.classifiers import ClassifierInfo, ClassifierKind
from stream_etl.control.crawlers import CrawlerInfo, CrawlerRunInfo, Crawlers, CrawlerSpec
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store


class ClassifierCreate(BaseModel):
    name: str
    kind: ClassifierKind
    settings: dict[str, Any] = Field(default_factory=dict)


class RunRequest(BaseModel):
    run_properties: dict[str, str] = Field(default_factory=dict)


def add_routes(app: FastAPI, store: Store, box: SecretBox | None, guards: Guards) -> None:
    crawlers = Crawlers(store, box)
    viewer, operator = guards.viewer, guards.operator

    @app.get("/crawlers", tags=["crawlers"], dependencies=[viewer])
    def list_crawlers() -> list[CrawlerInfo]:
        return crawlers.list_all()

    @app.post("/crawlers", tags=["crawlers"], dependencies=[operator], status_code=201)
    def create_crawler(body: CrawlerSpec, replace: bool = False) -> CrawlerInfo:
        return crawlers.create(body, replace=replace)

    @app.get("/crawlers/{name}", tags=["crawlers"], dependencies=[viewer])
    def get_crawler(name: str) -> CrawlerInfo:
        return crawlers.get(name)

    @app.delete("/crawlers/{name}", tags=["crawlers"], dependencies=[operator], status_code=204)
    def delete_crawler(name: str) -> None:
        crawlers.delete(name)

    @app.post("/crawlers/{name}/runs", tags=["crawlers"], dependencies=[operator], status_code=202)
    def start_crawler(name: str, body: RunRequest | None = None) -> CrawlerRunInfo:
        run_id = crawlers.start(name, run_properties=body.run_properties if body else None)
        return crawlers.get_run(run_id)

    @app.get("/crawlers/{name}/runs", tags=["crawlers"], dependencies=[viewer])
    def crawler_runs(name: str, limit: int = 50) -> list[CrawlerRunInfo]:
        return crawlers.runs(name, limit=limit)

    @app.get("/crawler-runs", tags=["crawlers"], dependencies=[viewer])
    def all_crawler_runs(limit: int = 50) -> list[CrawlerRunInfo]:
        return crawlers.runs(limit=limit)

    @app.get("/crawler-runs/{run_id}", tags=["crawlers"], dependencies=[viewer])
    def get_crawler_run(run_id: int) -> CrawlerRunInfo:
        return crawlers.get_run(run_id)

    @app.get("/classifiers", tags=["crawlers"], dependencies=[viewer])
    def list_classifiers() -> list[ClassifierInfo]:
        return crawlers.classifiers()

    @app.post("/classifiers", tags=["crawlers"], dependencies=[operator], status_code=201)
    def create_classifier(body: ClassifierCreate) -> ClassifierInfo:
        return crawlers.create_classifier(body.name, body.kind, body.settings)

    @app.get("/classifiers/{name}", tags=["crawlers"], dependencies=[viewer])
    def get_classifier(name: str) -> ClassifierInfo:
        return crawlers.get_classifier(name)

    @app.delete("/classifiers/{name}", tags=["crawlers"], dependencies=[operator], status_code=204)
    def delete_classifier(name: str) -> None:
        crawlers.delete_classifier(name)
