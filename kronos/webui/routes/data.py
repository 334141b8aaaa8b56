"""What the page can choose from (models, data files) and opening a dataset (upload or data-directory file)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kronos.inference.frame import read_long_frame
from kronos.inference.validation import ForecastInputError
from kronos.webui.bodies import DataFileBody
from kronos.webui.catalog import HUB_CHOICES, list_data_files, list_experiments, list_model_dirs, resolve_data_file
from kronos.webui.datasets import Dataset
from kronos.webui.errors import SafeJSONResponse
from kronos.webui.jobs import Cancelled, run_cancellable
from kronos.webui.state import AppState

# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def router(state: AppState) -> APIRouter:
    """``/api/models``, ``/api/data-files``, ``/api/datasets/upload`` and ``/api/datasets/file``."""
    r = APIRouter()

    @r.get("/api/models")
    def list_models() -> dict[str, object]:
        return {
            "outputs_dir": str(state.outputs.resolve()),
            "models_dir": str(state.models_root.resolve()) if state.models_root else None,
            "experiments": [c.as_dict() for c in list_experiments(state.outputs)],
            "models": [c.as_dict() for c in list_model_dirs(state.models_root)],
            "hub": [c.as_dict() for c in HUB_CHOICES],
            "loaded": [{"predictor": k[0], "tokenizer": k[1], "max_context": k[3]} for k in state.models.loaded()],
        }

    @r.get("/api/data-files")
    def data_files() -> dict[str, object]:
        return {"data_dir": str(state.data_root.resolve()), "files": list_data_files(state.data_root)}

    @r.post("/api/datasets/upload")
    async def upload(request: Request) -> SafeJSONResponse:
        max_upload_bytes = state.max_upload_bytes
        limit_mb = max_upload_bytes / 2**20
        too_large = SafeJSONResponse(
            {"detail": f"upload is larger than the {limit_mb:g} MB limit: send fewer rows "
                       f"(trim the history) or place the file in the data directory and pick it from the list"},
            status_code=413,
        )
        declared = request.headers.get("content-length")
        # Refuse before reading the body when the client announces its size honestly.
        if declared and declared.isdigit() and int(declared) > max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
            return too_large
        form = await request.form()
        upload_file = form.get("file")
        if upload_file is None or isinstance(upload_file, str):
            raise ForecastInputError("no file in the upload: send the CSV as the multipart field 'file'")
        content = await upload_file.read(max_upload_bytes + 1)
        if len(content) > max_upload_bytes:
            return too_large
        name = (upload_file.filename or "upload.csv").replace("\x00", "")
        async def parse(_cancelled: Cancelled) -> tuple:  # a shutdown answers 503 at once, not a 500 later
            return await run_in_threadpool(read_long_frame, content, name)

        frame, incomplete = await run_cancellable(request, state.shutdown, parse)
        dataset = Dataset(name, frame, incomplete)
        return SafeJSONResponse(dataset.summary(state.datasets.add(dataset)))

    @r.post("/api/datasets/file")
    def open_data_file(body: DataFileBody) -> dict[str, object]:
        path = resolve_data_file(state.data_root, body.path)
        dataset = Dataset(body.path, *read_long_frame(path, body.path))
        return dataset.summary(state.datasets.add(dataset))

    return r
