package agent_test

import (
	"context"
	"testing"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/llm"
)

type scripted struct {
	name  string
	resps []llm.ChatResponse
	n     int
}

func (s *scripted) Name() string { return s.name }
func (s *scripted) Complete(context.Context, llm.ChatRequest) (llm.ChatResponse, error) {
	r := s.resps[s.n]
	s.n++
	return r, nil
}

// Regression (review of issue 9): the review step (circuit cot_engine) is credited with the
// data_analyst circuit's revise call: its failover, its requests.
func TestTheReviewStepShouldCountOnlyItsOwnCircuitsRequests(t *testing.T) {
	critic := &scripted{name: "cot_engine", resps: []llm.ChatResponse{
		{Content: "INVALID: wrong", Model: "critic-m", Provider: "default", Attempts: 1},
		{Content: "VALID", Model: "critic-m", Provider: "default", Attempts: 1},
	}}
	answerer := &scripted{name: "data_analyst", resps: []llm.ChatResponse{
		{Content: "first", Model: "ans-m", Provider: "default", Attempts: 1},
		{Content: "second", Model: "backup-m", Provider: "backup", Attempts: 3, Failover: true},
	}}
	a := agent.NewAnalyst(agent.Config{Answerer: answerer, Planner: &scripted{name: "code_generator"}, Critic: critic,
		Charter: &scripted{name: "visualization"}, MaxIterations: 2})
	ans, err := a.Analyze(context.Background(), agent.Request{Query: "q", Review: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range ans.Steps {
		if st.Step == agent.StepReview {
			if st.Failover || st.LLMRequests != 2 {
				t.Fatalf("review step (circuit %s): provider %s model %s llm_requests %d failover %v — includes data_analyst's revise call",
					st.Circuit, st.Provider, st.Model, st.LLMRequests, st.Failover)
			}
		}
	}
}
