import { expect, test } from "bun:test";
import { subnetSyntaxProblem } from "./bundles";

test("the subnet field's own check: syntax, prefix, host bits", () => {
  expect(subnetSyntaxProblem("10.77.0.0/24")).toBeNull();
  expect(subnetSyntaxProblem("10.77.0.0")).toContain("IPv4 subnet");
  expect(subnetSyntaxProblem("10.77.0.0/30")).toContain("prefix");
  expect(subnetSyntaxProblem("10.77.0.5/24")).toContain("10.77.0.0/24");
  expect(subnetSyntaxProblem("300.1.1.0/24")).toContain("0 to 255");
});
