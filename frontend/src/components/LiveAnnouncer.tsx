// Tells screen-reader users about the moments that need them (a gate opening, the run finishing
// or failing) without reading out every streamed token.

import { STAGE_LABEL } from "../protocol/types";
import { useSessionStore } from "../store/session";

export function LiveAnnouncer() {
  const status = useSessionStore((s) => s.view.state?.run.status ?? null);
  const gateStage = useSessionStore((s) => s.view.state?.gate?.stage ?? null);
  let text = "";
  if (gateStage) text = `${STAGE_LABEL[gateStage]} needs your approval.`;
  else if (status === "completed") text = "The plan is complete.";
  else if (status === "failed") text = "The run stopped on an error.";
  else if (status === "paused") text = "The run is paused.";
  else if (status === "cancelled") text = "The run was cancelled.";
  return (
    <div className="sr-only" aria-live="assertive" aria-atomic="true">
      {text}
    </div>
  );
}
