/**
 * A module that exports no node types, for tests of plugin errors.
 *
 * @module
 */

/** Not a node type. */
export const notANode = { type: "not_a_node" };
