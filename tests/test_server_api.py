"""The dashboard's JSON API on a real uvicorn server on loopback: every endpoint, bad input, token."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.neighbors import NearestNeighbors
from surfaces_helpers import CLASS_NAMES, CONCEPT_LAYER, GRADCAM_LAYER, with_extras
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app as cli
from latentsight.errors import LatentsightError
from latentsight.insights.describe import enriched_metadata
from latentsight.latent.projection import reduce
from latentsight.overlay import overlay
from latentsight.server import RunState, background, create_app
from latentsight.server.security import check_binding
from latentsight.store.concepts import discovered_file

NEURONS = "neurons.classifier.3@input"
BINARY = "application/octet-stream"


@pytest.fixture(scope="module")
def run(dashboard_run, tmp_path_factory):
    return with_extras(dashboard_run, tmp_path_factory.mktemp("api") / "run")


@pytest.fixture(scope="module")
def client(run):
    with background(create_app(run)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def test_run_info(client, run):
    info = client.get("/api/run").json()
    assert info["n_samples"] == len(run.samples)
    assert info["subsets"] == ["train", "val"]
    assert info["layer"] == run.analysis_info["layer"]
    names = {c["name"]: c for c in info["columns"]}
    assert {"loss", "subset", "cluster", "correct", *run.manifest["metadata_columns"]} <= set(names)
    assert names["subset"]["kind"] == "category" and names["loss"]["kind"] == "number"
    assert info["has_explanations"] is True
    discovered = discovered_file(run.path, run.analysis_info["layer"]).stem
    assert info["concept_tables"] == [NEURONS, discovered, "audit"]
    val = next(m for m in info["metrics"] if m["subset"] == "val")
    assert val["loss"] == pytest.approx(run.samples.query("subset == 'val'")["loss"].mean())


def test_run_info_names_the_classes_the_columns_hold_as_indices(client, run):
    info = client.get("/api/run").json()
    assert info["classes"] == CLASS_NAMES
    assert info["class_columns"] == ["target", "prediction", "suggested_label"]
    target = next(c for c in info["columns"] if c["name"] == "target")
    assert target["categories"] == ["0", "1", "2", "3"]  # indices, that the page maps to names
    sample = client.get("/api/sample", params={"row": 0}).json()
    assert sample["target"] == run.samples["target"].iloc[0]  # an index, as clients filter on


def test_run_info_of_a_run_without_class_names_names_none(unnamed_dashboard_run):
    with background(create_app(unnamed_dashboard_run)) as url:
        info = httpx.get(f"{url}/api/run", timeout=30).json()
    assert info["classes"] == [] and info["class_columns"] == []


def test_map_and_columns_are_binary_arrays_in_row_order(client, run):
    n = len(run.samples)
    raw = np.frombuffer(client.get("/api/map").content, dtype="<f4")
    assert raw.shape == (2 * n,)
    assert np.allclose(raw[:n], run.map["x"]) and np.allclose(raw[n:], run.map["y"])
    loss = np.frombuffer(client.get("/api/columns/loss").content, dtype="<f4")
    assert np.allclose(loss, run.samples["loss"])
    response = client.get("/api/columns/subset")
    assert response.headers["x-kind"] == "category"
    categories = next(c for c in client.get("/api/run").json()["columns"] if c["name"] == "subset")
    codes = np.frombuffer(response.content, dtype="<u2")
    decoded = np.array(categories["categories"])[codes]
    assert (decoded == run.samples["subset"].to_numpy()).all()
    metadata_x = np.frombuffer(client.get("/api/columns/x").content, dtype="<f4")
    assert np.allclose(metadata_x, run.samples["x"])  # metadata x is not the map's x


def select(client, rows, content_type=BINARY):
    body = np.asarray(rows, dtype="<u4").tobytes()
    return client.post("/api/selection", content=body, headers={"content-type": content_type})


def test_selection_statistics_match_pandas_and_the_insight_describer(client, run):
    samples = run.samples
    rng = np.random.default_rng(0)
    blue = (samples["background"] == "blue").to_numpy()
    for mask in (blue, rng.random(len(samples)) < 0.2, (samples["size"] < 6).to_numpy()):
        rows = np.flatnonzero(mask).tolist()
        stats = select(client, rows).json()
        assert stats["size"] == mask.sum() and stats["rest"] == (~mask).sum()
        loss = next(v for v in stats["values"] if v["column"] == "loss")
        assert loss["inside"] == pytest.approx(samples["loss"][mask].mean())
        assert loss["outside"] == pytest.approx(samples["loss"][~mask].mean())
        mix = {m["subset"]: m["inside"] for m in stats["subsets"]}
        assert mix == samples["subset"][mask].value_counts().to_dict()
        expected = enriched_metadata(samples, run.manifest["metadata_columns"], mask)
        assert [e["text"] for e in stats["enriched"]] == [e.text for e in expected]
        assert [e["p_value"] for e in stats["enriched"]] == pytest.approx(
            [e.p_value for e in expected], rel=1e-9, abs=1e-300
        )
    blue_stats = select(client, np.flatnonzero(blue)).json()
    assert blue_stats["enriched"][0]["text"].startswith("background = blue: 100%")


def test_insights_list_and_detail(client, run):
    listed = client.get("/api/insights").json()
    assert [i["title"] for i in listed] == [i.title for i in run.insights]
    detail = client.get("/api/insights/0").json()
    ids = run.samples["id"].to_numpy()
    assert sorted(ids[detail["rows"]]) == sorted(run.insights[0].population)
    assert detail["evidence"][0]["detector"] == run.insights[0].evidence[0].detector
    population = run.samples[run.samples["id"].isin(run.insights[0].population)]
    hardest = population.sort_values("loss", ascending=False)["id"].head(len(detail["gallery"]))
    assert detail["gallery"] == hardest.tolist()


def test_sample_record_neighbours_and_image(client, run):
    samples = run.samples
    row = 5
    sample_id = samples["id"].iloc[row]
    by_id = client.get("/api/sample", params={"id": sample_id}).json()
    assert by_id == client.get("/api/sample", params={"row": row}).json()
    record = samples.iloc[row]
    assert by_id["target"] == record["target"] and by_id["prediction"] == record["prediction"]
    assert by_id["probabilities"] == pytest.approx(list(record["probabilities"]))
    assert by_id["values"]["loss"] == pytest.approx(record["loss"])
    assert by_id["metadata"]["background"] == record["background"]
    assert by_id["map"] == pytest.approx([run.map["x"].iloc[row], run.map["y"].iloc[row]])
    info = run.analysis_info
    latents = np.asarray(run.latent(info["layer"], info["view"]))
    reduced = reduce(latents, info["settings"]["pca_components"], seed=info["settings"]["seed"])
    _, nearest = NearestNeighbors(n_neighbors=9).fit(reduced).kneighbors(reduced[row : row + 1])
    expected = [samples["id"].iloc[i] for i in nearest[0] if i != row][:8]
    assert [n["id"] for n in by_id["neighbours"]] == expected  # the graph the detectors read
    assert list(run.neighbours.set_index("id").loc[sample_id, "neighbours"][:8]) == expected
    assert by_id["explanations"] == [
        {"method": "gradcam", "layer": GRADCAM_LAYER, "target": "predicted"}
    ]
    image = client.get("/api/sample/image", params={"id": sample_id})
    assert image.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(image.content)))
    assert (served == np.asarray(run.render(sample_id))).all()
    heat = client.get(
        "/api/sample/heatmap", params={"id": sample_id, "method": "gradcam", "layer": GRADCAM_LAYER}
    )
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    fresh = run.explain(sample_id, method="gradcam", layer=GRADCAM_LAYER, cache=False)
    expected = overlay(np.asarray(run.render(sample_id).convert("RGB")), fresh.maps[0])
    drawn = np.asarray(Image.open(io.BytesIO(heat.content)), np.int16)
    assert drawn.shape == np.asarray(expected).shape
    assert np.abs(drawn - np.asarray(expected, np.int16)).max() <= 2


def test_trends_and_concepts(client, run):
    samples = run.samples
    trend = client.get("/api/trends", params={"column": "background", "value": "loss"}).json()
    val = next(g for g in trend["groups"] if g["subset"] == "val")
    expected = samples[samples["subset"] == "val"].groupby("background")["loss"].mean()
    assert val["mean"] == pytest.approx([expected[label] for label in trend["labels"]])
    numeric = client.get("/api/trends", params={"column": "size", "value": "correct", "bins": 4})
    assert len(numeric.json()["labels"]) == 4
    tables = {t["name"]: t for t in client.get("/api/concepts").json()}
    discovered = discovered_file(run.path, run.analysis_info["layer"])
    assert list(tables) == [NEURONS, discovered.stem, "audit"]
    stored = pd.read_parquet(discovered)
    assert tables[discovered.stem]["rows"] == len(stored) and "top_samples" in stored
    served = client.get(f"/api/concepts/{discovered.stem}").json()
    column = served["columns"].index("top_samples")
    assert served["rows"][0][column] == ", ".join(stored["top_samples"].iloc[0])
    assert tables[NEURONS]["title"] == f"Neuron concepts at {CONCEPT_LAYER}"
    assert tables[NEURONS]["rows"] == 32  # the head's 32 inputs
    assert {"neuron", "formula", "auc", "q_value", "significant"} <= set(tables[NEURONS]["columns"])
    # computed again in memory, to compare with what the run stored and the server reads
    labels = run.concepts(CONCEPT_LAYER, class_names=CLASS_NAMES, save=False).table
    page = client.get(f"/api/concepts/{NEURONS}", params={"limit": 100}).json()
    assert page["total"] == 32
    served = dict(zip(page["columns"], zip(*page["rows"], strict=True), strict=True))
    assert list(served["formula"]) == labels["formula"].tolist()
    assert [float(a) for a in served["auc"] if a != "nan"] == pytest.approx(
        labels["auc"].dropna().tolist(), rel=1e-3
    )
    audit = client.get("/api/concepts/audit", params={"limit": 100}).json()
    audited = dict(zip(audit["columns"], zip(*audit["rows"], strict=True), strict=True))
    circle = [f for c, f in zip(audited["class"], audited["formula"], strict=True) if c == "circle"]
    assert any("background == blue" in formula for formula in circle)  # the planted shortcut


def test_page_static_files_and_schema(client):
    assert '<canvas id="map">' in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/vendor/plotly.min.js").text.startswith("/**")
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/api/run",
        "/api/map",
        "/api/columns/{name}",
        "/api/selection",
        "/api/insights",
        "/api/insights/{index}",
        "/api/sample",
        "/api/sample/image",
        "/api/sample/heatmap",
        "/api/explain",
        "/api/trends",
        "/api/concepts",
        "/api/concepts/{name}",
    } <= paths


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/api/sample", {"params": {"id": "train/999999"}}, 404),
        ("GET", "/api/sample", {"params": {"id": "../manifest.json"}}, 404),
        ("GET", "/api/sample", {"params": {"row": -1}}, 422),
        ("GET", "/api/sample", {"params": {"row": "abc"}}, 422),
        ("GET", "/api/sample", {"params": {"row": 10**9}}, 404),
        ("GET", "/api/sample", {}, 422),
        ("GET", "/api/sample", {"params": {"id": "train/0", "row": 0}}, 422),
        ("GET", "/api/sample/image", {"params": {"id": "/etc/passwd"}}, 404),
        (
            "GET",
            "/api/sample/heatmap",
            {"params": {"id": "train/0", "method": "../../..", "layer": "manifest.json"}},
            404,
        ),
        (
            "GET",
            "/api/sample/heatmap",
            {"params": {"id": "train/0", "method": "gradcam", "layer": "../../latents"}},
            404,
        ),
        ("GET", "/api/columns/..%2F..%2Fmanifest.json", {}, 404),
        ("GET", "/api/columns/nope", {}, 404),
        ("GET", "/api/concepts/..%2Fsamples", {}, 404),
        ("GET", f"/api/concepts/{NEURONS}", {"params": {"limit": 0}}, 422),
        ("GET", f"/api/concepts/{NEURONS}", {"params": {"offset": -3}}, 422),
        ("GET", "/api/concepts/neurons.features.2", {}, 404),
        ("POST", "/api/explain", {"json": {"id": "train/0", "method": "nope"}}, 422),
        (
            "POST",
            "/api/explain",
            {"json": {"id": "train/0", "method": "gradcam", "layer": "../../latents"}},
            422,
        ),
        (
            "POST",
            "/api/explain",
            {"json": {"id": "train/0", "method": "saliency", "layer": "features.0.0"}},
            422,
        ),
        ("POST", "/api/explain", {"json": {"id": "train/0", "target": "best"}}, 422),
        (
            "POST",
            "/api/explain",
            {"json": {"id": "train/0", "method": "gradcam", "target": 7}},
            422,
        ),
        ("POST", "/api/explain", {"json": {"id": "../manifest.json", "method": "gradcam"}}, 404),
        ("POST", "/api/explain", {"json": {"method": "gradcam"}}, 422),
        ("GET", "/static/../manifest.json", {}, 404),
        ("GET", "/static/%2e%2e/%2e%2e/manifest.json", {}, 404),
        ("GET", "/static/..%2F..%2F..%2Fstore%2Frun.py", {}, 404),
        ("GET", "/api/insights/abc", {}, 422),
        ("GET", "/api/insights/99999", {}, 404),
        ("GET", "/api/insights/-1", {}, 404),
        ("GET", "/api/trends", {"params": {"column": "nope"}}, 404),
        ("GET", "/api/trends", {"params": {"column": "size", "value": "nope"}}, 404),
        ("GET", "/api/trends", {"params": {"column": "size", "bins": 1}}, 422),
        ("GET", "/api/trends", {"params": {"column": "size", "bins": "many"}}, 422),
        ("POST", "/api/selection", {"content": b"\x00\x00\x00\x00\xff\xff\xff\xff"}, 422),
        ("POST", "/api/selection", {"content": b"\x00\x00\x00"}, 422),
        ("POST", "/api/selection", {"content": b"\x00" * 4 * 10**6}, 422),
        ("POST", "/api/selection", {"json": {"rows": [0, 1]}}, 415),
        ("POST", "/api/selection", {"json": {}}, 415),
        ("POST", "/api/run", {}, 405),
        ("DELETE", "/api/sample", {"params": {"id": "train/0"}}, 405),
    ],
)
def test_bad_requests_get_a_clear_4xx(client, method, path, kwargs, status):
    if "content" in kwargs:
        kwargs = {**kwargs, "headers": {"content-type": BINARY}}
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    if response.headers.get("content-type") == "application/json":
        assert response.json()["detail"]


def test_the_api_reference_is_served_without_network(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    schema = client.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        for method in methods:
            assert f"{method.upper()}</span>{path}" in page.text.replace("&#x27;", "'")
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    assert "SelectionOut" in page.text  # what POST /api/selection returns
    assert client.get("/redoc").status_code == 404


def test_a_foreign_host_header_is_refused_on_loopback(client):
    response = client.get("/api/run", headers={"Host": "attacker.example:8765"})
    assert response.status_code == 400 and "localhost only" in response.json()["detail"]


def test_the_token_is_enforced_beyond_loopback(run):
    with pytest.raises(LatentsightError, match=r"--token"):
        check_binding("0.0.0.0", None)
    state = RunState(run)
    app = create_app(state, token="s3cret")
    with background(app, host="0.0.0.0") as url, httpx.Client(base_url=url) as http:
        for path in ("/", "/api/run", "/api/map", "/static/app.js", "/openapi.json", "/docs"):
            assert http.get(path).status_code == 401
        assert http.get("/api/run", params={"token": "wrong"}).status_code == 401
        assert http.get("/api/run", headers={"X-Latentsight-Token": "s3cret"}).status_code == 200
        assert http.get("/api/run", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/api/map", params={"token": "s3cret"}).status_code == 200
        page = http.get("/", params={"token": "s3cret"})
        assert page.status_code == 200 and "latentsight_token" in page.headers["set-cookie"]
        assert http.get("/static/app.js").status_code == 200  # the page's cookie now
    with background(app, host="0.0.0.0") as url, httpx.Client(base_url=url) as http:
        reference = http.get("/docs", params={"token": "s3cret"})
        assert (
            reference.status_code == 200 and "latentsight_token" in reference.headers["set-cookie"]
        )
        assert http.get("/openapi.json").status_code == 200  # the reference page's schema link
        assert http.get("/api/run", headers={"Host": "elsewhere:1"}).status_code == 200


def test_cli_serve_refuses_a_public_address_without_token(run):
    result = CliRunner().invoke(cli, ["serve", str(run.path), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--token" in result.output


def test_explanations_are_computed_on_demand_and_cached_in_the_run(client, run):
    options = client.get("/api/explain").json()
    assert options["available"] is True
    assert options["layers"] == ["features.0.0", "features.1.0", "features.2.0"]
    assert {"gradcam", "layercam", "integrated_gradients"} <= set(options["methods"])
    assert options["layered"] == ["gradcam", "layercam"]
    assert options["targets"] == ["predicted", "label", *CLASS_NAMES]
    sample_id = run.samples["id"].iloc[7]
    asked = {"id": sample_id, "method": "gradcam", "layer": "features.1.0", "target": "label"}
    made = client.post("/api/explain", json=asked)
    assert made.status_code == 200, made.text
    assert made.json() == {"method": "gradcam", "layer": "features.1.0", "target": "label"}
    listed = client.get("/api/sample", params={"id": sample_id}).json()["explanations"]
    assert {"method": "gradcam", "layer": "features.1.0", "target": "label"} in listed
    cached = run.explain(sample_id, method="gradcam", layer="features.1.0", target="label")
    fresh = run.explain(
        sample_id, method="gradcam", layer="features.1.0", target="label", cache=False
    )
    assert np.allclose(cached.maps, fresh.maps, atol=1e-6)  # what the server stored is right
    assert cached.classes[0] == run.samples["target"].iloc[7]
    heat = client.get(
        "/api/sample/heatmap",
        params={"id": sample_id, "method": "gradcam", "layer": "features.1.0", "target": "label"},
    )
    assert heat.status_code == 200
    expected = overlay(np.asarray(run.render(sample_id).convert("RGB")), fresh.maps[0])
    drawn = np.asarray(Image.open(io.BytesIO(heat.content)), np.int16)
    assert np.abs(drawn - np.asarray(expected, np.int16)).max() <= 2
    any_layer = client.get("/api/sample/heatmap", params={"id": sample_id, "method": "gradcam"})
    assert any_layer.status_code == 200 and any_layer.content == heat.content
    default = client.post("/api/explain", json={"id": sample_id, "method": "saliency"})
    assert default.json() == {"method": "saliency", "layer": None, "target": "predicted"}
    saliency = client.get("/api/sample/heatmap", params={"id": sample_id, "method": "saliency"})
    assert saliency.status_code == 200
    # the spellings the CLI and run.explain take: a short method name, a class by name or index
    for target, key in (("square", "class-1"), ("2", "class-2")):
        made = client.post("/api/explain", json={"id": sample_id, "method": "ig", "target": target})
        assert made.status_code == 200, made.text
        assert made.json() == {"method": "integrated_gradients", "layer": None, "target": key}
        drawn = client.get(
            "/api/sample/heatmap",
            params={"id": sample_id, "method": "integrated_gradients", "target": key},
        )
        assert drawn.status_code == 200
    by_index = run.explain(sample_id, method="integrated_gradients", target=2)
    assert by_index.classes[0] == 2
    unknown = client.post("/api/explain", json={"id": sample_id, "method": "ig", "target": "dog"})
    assert unknown.status_code == 422 and "'square'" in unknown.json()["detail"]


def test_without_a_model_the_cached_explanations_are_shown_and_the_way_to_more_said(run):
    bare = ls.open_run(run.path)  # no Project attached
    with background(create_app(bare)) as url, httpx.Client(base_url=url, timeout=30) as http:
        options = http.get("/api/explain").json()
        assert options["available"] is False and "--project module:project" in options["note"]
        sample_id = run.samples["id"].iloc[3]
        refused = http.post("/api/explain", json={"id": sample_id, "method": "gradcam"})
        assert refused.status_code == 409 and "--project" in refused.json()["detail"]
        listed = http.get("/api/sample", params={"id": sample_id}).json()["explanations"]
        assert {"method": "gradcam", "layer": GRADCAM_LAYER, "target": "predicted"} in listed
        heat = http.get(
            "/api/sample/heatmap",
            params={"id": sample_id, "method": "gradcam", "layer": GRADCAM_LAYER},
        )
        assert heat.status_code == 200
        missing = http.get(
            "/api/sample/heatmap",
            params={"id": sample_id, "method": "gradcam", "layer": "features.0.0"},
        )
        assert missing.status_code == 404 and "cached:" in missing.json()["detail"]


def test_cli_serve_names_a_project_it_cannot_load(run):
    result = CliRunner().invoke(cli, ["serve", str(run.path), "--project", "no_such_module:p"])
    assert result.exit_code == 2 and "No module named 'no_such_module'" in result.output


def test_the_listing_of_cached_maps_agrees_with_the_cache(run):
    from latentsight.report.extras import heatmaps

    listed = RunState(run).explanations.listed
    ids = run.samples["id"].tolist()
    with_maps = 0
    for sample_id in ids[:40]:
        expected = [
            {"method": h.method, "layer": h.layer, "target": h.target}
            for h in heatmaps(run.path, sample_id)
        ]
        assert listed(sample_id) == expected
        with_maps += bool(expected)
    assert with_maps  # some of them have cached maps, so the comparison means something
