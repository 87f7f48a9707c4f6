package api

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
)

// fallbackService is what a circuit's fallback tells the user: the service
// it stands for, and what they can do while it is away; sourceAlternatives
// replace alternatives when the request named a live source.
type fallbackService struct {
	name               string
	alternatives       []string
	sourceAlternatives []string
}

// fallbackServices are the seed's fallback texts, per circuit.
var fallbackServices = map[string]fallbackService{
	config.CircuitDataAnalyst: {"The data analysis service", []string{
		"Look at the first rows of your data to answer simple lookups yourself: GET /datasets/{id}/rows (add ?table=NAME when the dataset has several tables).",
		"Run your own SQL, no LLM involved: POST /datasets/{id}/query with {\"sql\": \"SELECT ...\"}.",
		"Read basic summary statistics (count, nulls, min, max, mean, top values) per column: GET /datasets/{id}.",
		"Plot the columns you care about with a simple bar or line chart.",
	}, []string{
		"Look at the first rows of a table to answer simple lookups yourself: GET /sources/{source}/rows?table=NAME.",
		"Run your own SQL, no LLM involved: POST /sources/{source}/query with {\"sql\": \"SELECT ...\"}.",
		"Read each table's columns and catalog statistics (estimated rows, nulls, distinct values, common values): GET /sources/{source}.",
		"Plot the columns you care about with a simple bar or line chart.",
	}},
	config.CircuitCodeGenerator: {"Code generation", []string{
		"Write the query or script by hand, starting from a previous generated snippet; run SQL yourself with POST /datasets/{id}/query.",
		"Use pandas' describe(), groupby() and value_counts() for common summaries.",
		"Ask a narrower question once the service is back: shorter prompts generate faster.",
	}, []string{
		"Write the query by hand, starting from a previous generated snippet; run it yourself with POST /sources/{source}/query.",
		"See the tables and columns to write it against: GET /sources/{source}.",
		"Ask a narrower question once the service is back: shorter prompts generate faster.",
	}},
	config.CircuitCoTEngine: {"Answer review", []string{
		"Use the unreviewed answer, checking its numbers against your data.",
		"Re-run the question later to get a reviewed answer.",
	}, nil},
	config.CircuitVisualization: {"Chart suggestions", []string{
		"Plot the result with matplotlib, seaborn or pandas' .plot().",
		"Use a bar chart for category totals and a line chart for values over time.",
	}, nil},
}

// dataRef is the data a request that could not be answered named: a
// stored dataset's id or a live source's name (or neither).
type dataRef struct{ datasetID, source string }

// dataError ties an error to the data its request named, so that the
// 503's advice can link to what can still be read without the LLM.
type dataError struct {
	err error
	ref dataRef
}

func (e *dataError) Error() string { return e.err.Error() }
func (e *dataError) Unwrap() error { return e.err }

// aboutData wraps err with the data the request named, if any.
func aboutData(err error, datasetID, source string) error {
	if datasetID == "" && source == "" {
		return err
	}
	return &dataError{err: err, ref: dataRef{datasetID: datasetID, source: source}}
}

// dataOf returns the data a request that could not be answered was
// about.
func dataOf(err error) dataRef {
	if ue, ok := errors.AsType[*agent.UnavailableError](err); ok {
		return dataRef{datasetID: ue.DatasetID, source: ue.Source}
	}
	if de, ok := errors.AsType[*dataError](err); ok {
		return de.ref
	}
	return dataRef{}
}

// fallbackFor says what the user can do while e's circuit keeps the LLM
// away, and when to come back. The alternatives link to the endpoints that
// read data without the LLM: a source's when the request named one, with
// its name filled in, else a dataset's, with its id filled in when the
// request named one. A circuit held open by an operator does not recover
// on its own, so its message says who holds it and how it is released,
// instead of promising a retry time.
func fallbackFor(e *circuit.LLMError, retry int, ref dataRef) fallbackInfo {
	svc, known := fallbackServices[e.Circuit]
	if !known {
		svc = fallbackService{name: "The AI service", alternatives: []string{}}
	}
	alts := svc.alternatives
	switch {
	case ref.source != "" && svc.sourceAlternatives != nil:
		alts = make([]string, len(svc.sourceAlternatives))
		for i, a := range svc.sourceAlternatives {
			alts[i] = strings.ReplaceAll(a, "{source}", ref.source)
		}
	case ref.datasetID != "":
		alts = make([]string, len(svc.alternatives))
		for i, a := range svc.alternatives {
			alts[i] = strings.ReplaceAll(a, "{id}", ref.datasetID)
		}
	}
	fb := fallbackInfo{RetryAfterSeconds: retry, Alternatives: alts}
	switch {
	case errors.Is(e, circuit.ErrCircuitForcedOpen):
		fb.Message = fmt.Sprintf("%s is switched off: an operator holds its circuit (%s) open. "+
			"It stays off until an operator releases it with POST /api/circuits/%s/close or /reset; it does not recover on its own.",
			svc.name, e.Circuit, e.Circuit)
	case !known:
		fb.Message = fmt.Sprintf("The AI service is currently unavailable. Please try again in %d s.", retry)
	case e.Circuit == config.CircuitDataAnalyst || e.Circuit == config.CircuitCodeGenerator:
		fb.Message = fmt.Sprintf("%s is temporarily unavailable. It recovers on its own; try again in %d s.", svc.name, retry)
	default:
		fb.Message = fmt.Sprintf("%s is temporarily unavailable; try again in %d s.", svc.name, retry)
	}
	return fb
}
