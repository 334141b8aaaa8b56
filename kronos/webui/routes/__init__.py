"""The web UI's routes, one module per area; each ``router(state)`` returns an APIRouter over ``AppState``."""
