//go:build !race

package folder

const raceEnabled = false
