"""Forecasting web UI: a FastAPI server and one static page (Plotly served locally, no CDN)."""
