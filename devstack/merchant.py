"""A stand-in for the merchant's order service during development: it answers the signed
confirmation callback, accepting every order unless its metadata asks for a refusal."""

from __future__ import annotations

import json
import os
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from activities.merchant import SIGNATURE_HEADER, verify
from settings import SANDBOX_MERCHANT_SECRET

app = FastAPI(title="Dev merchant")


@app.post("/confirm")
async def confirm(request: Request) -> JSONResponse:
    body = await request.body()
    secret = os.environ.get("MERCHANT_CALLBACK_SECRET", SANDBOX_MERCHANT_SECRET)
    if not verify(body, request.headers.get(SIGNATURE_HEADER, ""), secret):
        return JSONResponse({"error": "bad signature"}, status_code=401)
    order = json.loads(body)
    if str(order.get("type", "")).startswith("dispute."):
        return JSONResponse({"received": True})  # dispute.opened / dispute.closed notices
    if str(order.get("order_id", "")).startswith("refuse-"):
        return JSONResponse({"accepted": False, "reason": "out of stock"})
    return JSONResponse({"accepted": True, "reason": "in stock"})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
