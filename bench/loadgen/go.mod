module agentwatch/bench/loadgen

go 1.22
