// Package httpx holds small HTTP helpers shared by Nexus's outbound clients
// (the LLM client in infra and the alert webhook sender), so that each rule
// of the protocol is read the same way everywhere. It imports nothing of
// ours.
package httpx
