package sim

import (
	"fmt"
	"math/rand/v2"
)

// Demo data: invented people, places and Update messages with a UK flavour.

// role is a kind of lone worker, with the Update messages such a worker
// leaves before a visit.
type role struct {
	team    string
	updates []string
}

var roles = []role{
	{"Community nursing", []string{
		"Wound dressing, 14 Ashby Road, patient lives alone",
		"Insulin round, second floor flat, lift out of order",
		"Palliative visit, family present, large dog in the kitchen",
		"New patient referral, no previous notes, ring before entering",
		"Evening visit, poorly lit close behind the parade of shops",
	}},
	{"Housing", []string{
		"High-risk tenant, second floor, history of verbal aggression",
		"Rent arrears visit, 7 Mill Lane, tenant expecting me",
		"Damp inspection, ground floor flat, two adults present",
		"Void property check, Flat 12 Canal Court, nobody should be in",
		"Anti-social behaviour follow-up, meeting on the stairwell",
	}},
	{"Social care", []string{
		"Safeguarding check, partner may be home, do not call the landline",
		"Carer assessment, farmhouse off the B road, patchy signal",
		"Home visit with interpreter, third floor, no lift",
	}},
}

var firstNames = []string{"Aisha", "Ben", "Ceri", "Dev", "Eilidh", "Femi", "Gareth", "Hannah", "Imran", "Joanna",
	"Kwame", "Lowri", "Marcus", "Niamh", "Owen", "Priya", "Rhys", "Siobhan", "Tom", "Yasmin"}

var lastNames = []string{"Ahmed", "Baker", "Campbell", "Davies", "Evans", "Fletcher", "Griffiths", "Hughes", "Iqbal",
	"Jones", "Kaur", "Lewis", "Morgan", "Nowak", "O'Neill", "Patel", "Roberts", "Shah", "Thomas", "Walsh"}

// places are centres the simulated workers wander around.
var places = []struct {
	name     string
	lat, lon float64
}{
	{"Ashby-de-la-Zouch", 52.746, -1.476},
	{"Kendal", 54.328, -2.745},
	{"Llandudno", 53.324, -3.828},
	{"Paisley", 55.846, -4.424},
	{"Stroud", 51.745, -2.218},
	{"Whitby", 54.486, -0.615},
	{"Hackney", 51.545, -0.055},
	{"Truro", 50.263, -5.051},
}

// personName returns the i-th worker's name.
func personName(i int) string {
	return fmt.Sprintf("%s %s", firstNames[i%len(firstNames)], lastNames[(i*7+3)%len(lastNames)])
}

// location is a fix near a place, as device protocol v1 writes it.
type location struct {
	Lat      float64 `json:"lat"`
	Lon      float64 `json:"lon"`
	Accuracy float64 `json:"accuracy_m,omitempty"`
	Source   string  `json:"source,omitempty"`
}

// wander moves loc a few tens of metres.
func wander(rng *rand.Rand, loc location) location {
	loc.Lat += (rng.Float64() - 0.5) * 0.0008
	loc.Lon += (rng.Float64() - 0.5) * 0.0012
	loc.Accuracy = float64(5 + rng.IntN(30))
	loc.Source = []string{"gps", "gps", "gps", "wifi", "cell"}[rng.IntN(5)]
	return loc
}

// randomAlarmType picks an alarm type, red alerts the most often.
func randomAlarmType(rng *rand.Rand) string {
	switch n := rng.IntN(100); {
	case n < 50:
		return "red_alert"
	case n < 70:
		return "man_down"
	case n < 85:
		return "discreet_panic"
	case n < 95:
		return "low_battery"
	default:
		return "test"
	}
}
