//go:build race

package dataset

// raceEnabled is true in race-detector builds, whose shadow memory cannot
// live under an address-space limit.
const raceEnabled = true
