"""Every school-facing route (central/school/api.py and the dashboard), for one include_router."""

from __future__ import annotations

from fastapi import APIRouter

from central.school.api import router as api_router
from central.school.dashboard import router as dashboard_router

router = APIRouter()
router.include_router(api_router)
router.include_router(dashboard_router)
