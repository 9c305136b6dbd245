import assert from "node:assert/strict";
import { emptyHistory, pushed, redone, undone } from "./history.ts";
import { connectionProblem } from "./port_check.ts";

Deno.test("undo and redo move operations between the stacks; a new edit clears redo", () => {
  const set = { op: "set_setting", node: "sample", name: "steps", value: 2 } as const;
  const connect = { op: "connect", from: "a.x", to: "b.y" } as const;
  let history = pushed(pushed(emptyHistory(), set), connect);
  history = undone(history);
  assert.deepEqual(history, { done: [set], undone: [connect] });
  assert.deepEqual(redone(history), { done: [set, connect], undone: [] });
  assert.deepEqual(pushed(history, connect).undone, []);
  assert.equal(undone(emptyHistory()).done.length, 0);
});

Deno.test("moving one node again replaces its last move: a drag is one step", () => {
  let history = pushed(emptyHistory(), { op: "move_node", id: "a", position: [1, 1] });
  history = pushed(history, { op: "move_node", id: "a", position: [5, 5] });
  assert.deepEqual(history.done, [{ op: "move_node", id: "a", position: [5, 5] }]);
  history = pushed(history, { op: "move_node", id: "b", position: [0, 0] });
  assert.equal(history.done.length, 2);
});

Deno.test("the page refuses connections as the engine does", () => {
  assert.equal(
    connectionProblem({ kind: "model", role: "vae" }, { kind: "model", role: "text_encoder" }),
    "expected model<text_encoder>, got model<vae>",
  );
  assert.equal(
    connectionProblem({ kind: "tensor", rank: 4 }, { kind: "tensor", rank: 5 }),
    "expected tensor of rank 5, got rank 4",
  );
  assert.equal(connectionProblem({ kind: "integer" }, { kind: "number" }), undefined);
  assert.equal(connectionProblem({ kind: "tensor" }, { kind: "any" }), undefined);
});
