#!/usr/bin/env bash
# Serves the built Worker and UI with `wrangler dev` on 127.0.0.1:${PORT:-8787}.
# Provider settings come from the environment or .dev.vars; nothing is written to disk but a
# private temp file that holds them for wrangler (so the key never appears in `ps`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
PORT=${PORT:-8787}
args=(dev --ip 127.0.0.1 --port "$PORT" --show-interactive-dev-session=false)
[[ -f .dev.vars ]] && args+=(--env-file .dev.vars)
envfile=$(mktemp)
chmod 600 "$envfile"
trap 'rm -f "$envfile"' EXIT
for k in OPENAI_API_KEY OPENAI_BASE_URL OPENAI_MODEL ALLOWED_ORIGINS BOTARMY_ACCESS_TOKEN \
         SESSION_TOKEN_BUDGET LLM_REQUESTS_PER_MIN LLM_TOKENS_PER_MIN LLM_MAX_CONCURRENT \
         LLM_STALL_TIMEOUT_MS LLM_BACKOFF_BASE_MS LLM_BACKOFF_CAP_MS DEMO_TOKEN_INTERVAL_MS SOCKET_IDLE_MS \
         ANTHROPIC_API_KEY ANTHROPIC_BASE_URL AGENT_MODELS AGENT_MODELS_OFFERED MODEL_PRICES \
         SESSION_BUDGET_USD ANTHROPIC_THINKING_TOKENS; do
  if [[ -n "${!k:-}" ]]; then printf '%s=%s\n' "$k" "${!k}" >>"$envfile"; fi
done
[[ -s $envfile ]] && args+=(--env-file "$envfile")
[[ -n "${PERSIST_TO:-}" ]] && args+=(--persist-to "$PERSIST_TO")
if grep -qs '^\(OPENAI\|ANTHROPIC\)_API_KEY=.' "$envfile" .dev.vars 2>/dev/null; then
  echo "[dev] providers configured; models per agent: ${AGENT_MODELS:-defaults} (GET /api/models lists them)"
else
  echo "[dev] no OPENAI_API_KEY or ANTHROPIC_API_KEY: demo provider"
fi
echo "[dev] BotArmy on http://127.0.0.1:$PORT"
exec npx wrangler "${args[@]}"
