package session

// RaceEnabled is raceEnabled for the tests of package session_test.
var RaceEnabled = raceEnabled
