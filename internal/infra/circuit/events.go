package circuit

import (
	"time"

	"github.com/nexus/nexus/internal/infra/llm"
)

// Event types in a circuit's event log.
const (
	EventTransition = "transition"
	EventFailure    = "failure"
	EventRejected   = "rejected"
	EventForced     = "forced"
	EventReset      = "reset"
	EventReconfig   = "reconfigured"
	EventCooldown   = "cooldown"
	EventProbe      = "probe"
)

// Event is one entry of a circuit's event log, for operators.
type Event struct {
	At   time.Time `json:"at"`
	Type string    `json:"type"`
	From string    `json:"from,omitempty"`
	To   string    `json:"to,omitempty"`
	// Kind is the classified reason of a failure (llm_timeout, …) or of a
	// rejection (circuit_open, circuit_busy).
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Provider and Model name the target; empty for a circuit-wide event.
	Provider string `json:"provider,omitempty"`
	Model    string `json:"model,omitempty"`
	// Count and LastAt summarise a run of rejections in one entry.
	Count  int        `json:"count,omitempty"`
	LastAt *time.Time `json:"last_at,omitempty"`
}

// eventLog keeps the last max events. Runs of rejections are summarised
// into one entry, so that an open circuit under load does not push every
// other event out.
type eventLog struct {
	max    int
	events []Event
}

func (l *eventLog) add(e Event) {
	l.events = append(l.events, e)
	if len(l.events) > l.max {
		l.events = append(l.events[:0], l.events[len(l.events)-l.max:]...)
	}
}

// rejected records a refused call, summarising a run of refusals of the
// same kind (circuit_open or circuit_busy) in one entry.
func (l *eventLog) rejected(at time.Time, kind llm.Kind, who TargetSpec, reason string) {
	if n := len(l.events); n > 0 && l.events[n-1].Type == EventRejected && l.events[n-1].Kind == string(kind) &&
		l.events[n-1].Provider == who.Provider && l.events[n-1].Model == who.Model {
		last := &l.events[n-1]
		last.Count++
		t := at.UTC()
		last.LastAt = &t
		return
	}
	t := at.UTC()
	l.add(Event{At: t, Type: EventRejected, Kind: string(kind), Count: 1, LastAt: &t, Reason: reason, Provider: who.Provider, Model: who.Model})
}

func (l *eventLog) list() []Event {
	out := make([]Event, len(l.events))
	copy(out, l.events)
	return out
}
