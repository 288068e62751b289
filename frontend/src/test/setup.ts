import { afterEach } from "vitest";
import { cleanup, configure } from "@testing-library/react";

// findBy*/waitFor give up after 1 s by default; a machine busy with other suites (CI runs them
// one after another, but a developer may not) can take longer to render a page. Only the upper
// bound moves: a passing wait returns as soon as it passes.
configure({ asyncUtilTimeout: 5000 });

afterEach(() => {
  cleanup();
});
