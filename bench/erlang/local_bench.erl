%% Erlang/OTP counterpart of Aether's local benchmarks ping_pong, skynet and
%% activate (spawn), with the same case keys as bench/local_bench.cpp.
%% Erlang processes are the best known actor runtime; Debian packages it as
%% erlang-base.
%%
%% One workload per run, on as many schedulers as the VM was started with
%% (bench/run.sh: erl +S N). Prints one flat JSON object per line:
%%   {"bench":B,"case":C,"impl":"erlang","metric":M,"value":V,"unit":U,...}
%%
%% Usage (from bench/run.sh):
%%   erl +S N -noshell -pa DIR -s local_bench main WORKLOAD SCALE PAIRS
-module(local_bench).
-export([main/1]).

main([Workload, Scale, Pairs]) ->
    S = list_to_float(ensure_float(atom_to_list(Scale))),
    P = list_to_integer(atom_to_list(Pairs)),
    Ok = case Workload of
             ping_pong -> ping_pong(S, P);
             skynet -> skynet(S);
             activate -> activate(S);
             _ -> io:format(standard_error, "unknown workload ~p~n", [Workload]), false
         end,
    halt(case Ok of true -> 0; false -> 1 end).

ensure_float(Text) ->
    case lists:member($., Text) of
        true -> Text;
        false -> Text ++ ".0"
    end.

scaled(Base, Scale) -> max(1, round(Base * Scale)).

threads() -> erlang:system_info(schedulers_online).

now_s() -> erlang:monotonic_time(nanosecond) / 1.0e9.

emit(Bench, Case, Metric, Value, Unit, Params) ->
    Tail = lists:flatten([io_lib:format(",\"~s\":~p", [K, V]) || {K, V} <- Params]),
    io:format("{\"bench\":\"~s\",\"case\":\"~s\",\"impl\":\"erlang\",\"metric\":\"~s\",\"value\":~.6g,"
              "\"unit\":\"~s\"~s}~n",
              [Bench, Case, Metric, float(Value), Unit, Tail]).

%% -- ping_pong: `Pairs` pairs, each doing N round trips, all at once.

pong() ->
    receive
        {ball, From, N} -> From ! {ball, self(), N}, pong();
        stop -> ok
    end.

ping(Pong, Done) ->
    receive
        {ball, _, N} when N =< 1 -> Pong ! stop, Done ! done;
        {ball, _, N} -> Pong ! {ball, self(), N - 1}, ping(Pong, Done)
    end.

ping_pong(Scale, Pairs) ->
    N = scaled(1.0e6, Scale),
    Self = self(),
    Start = now_s(),
    lists:foreach(fun(_) ->
                          Pong = spawn(fun pong/0),
                          Ping = spawn(fun() -> ping(Pong, Self) end),
                          Pong ! {ball, Ping, N}
                  end, lists:seq(1, Pairs)),
    [receive done -> ok end || _ <- lists:seq(1, Pairs)],
    Secs = now_s() - Start,
    Case = io_lib:format("ping_pong threads=~p pairs=~p", [threads(), Pairs]),
    Params = [{threads, threads()}, {pairs, Pairs}, {round_trips, N}],
    emit(ping_pong, Case, msg_per_s, 2 * N * Pairs / Secs, "msg/s", Params),
    emit(ping_pong, Case, ns_per_round_trip, Secs * 1.0e9 / N, "ns", Params),
    true.

%% -- skynet: a 10-ary tree of processes; each leaf sends its number up.

skynet(Parent, Num, 1) -> Parent ! {sum, Num};
skynet(Parent, Num, Size) ->
    Child = Size div 10,
    Self = self(),
    [spawn(fun() -> skynet(Self, Num + I * Child, Child) end) || I <- lists:seq(0, 9)],
    Parent ! {sum, collect(10, 0)}.

collect(0, Sum) -> Sum;
collect(N, Sum) -> receive {sum, X} -> collect(N - 1, Sum + X) end.

skynet(Scale) ->
    Depth = max(2, round(math:log10(max(1.0, 1.0e6 * Scale)))),
    Leaves = round(math:pow(10, Depth)),
    Total = lists:sum([round(math:pow(10, D)) || D <- lists:seq(0, Depth)]),
    Expected = Leaves * (Leaves - 1) div 2,
    Self = self(),
    Start = now_s(),
    spawn(fun() -> skynet(Self, 0, Leaves) end),
    Sum = receive {sum, X} -> X end,
    Secs = now_s() - Start,
    case Sum of
        Expected ->
            Case = io_lib:format("skynet threads=~p actors=~p", [threads(), Total]),
            emit(skynet, Case, seconds, Secs, "s", [{threads, threads()}, {actors, Total}, {branching, 10}]),
            true;
        _ ->
            io:format(standard_error, "skynet: wrong sum ~p, expected ~p~n", [Sum, Expected]),
            false
    end.

%% -- activate (spawn): N idle processes, each touched once and answering;
%% time and resident bytes each (from /proc/self/statm, as the C++ sides
%% measure; the list of pids, 16 bytes each, is included, like CAF's
%% handles).

resident_bytes() ->
    {ok, Statm} = file:read_file("/proc/self/statm"),
    [_Size, Resident | _] = binary:split(Statm, <<" ">>, [global]),
    binary_to_integer(Resident) * 4096. % 4 KiB pages (Debian on x86-64 and arm64)

idle(Value) ->
    receive
        {touch, From, X} -> From ! ack, idle(Value + X)
    end.

activate(Scale) ->
    N = scaled(1.0e6, Scale),
    Wave = 10000,
    erlang:garbage_collect(),
    Before = resident_bytes(),
    Start = now_s(),
    Pids = spawn_waves(0, N, Wave, []),
    Secs = now_s() - Start,
    After = resident_bytes(),
    Case = io_lib:format("activate threads=~p actors=~p", [threads(), N]),
    Params = [{threads, threads()}, {actors, N}],
    emit(activate, Case, seconds, Secs, "s", Params),
    emit(activate, Case, bytes_per_actor, (After - Before) / N, "B", Params),
    is_list(Pids).

spawn_waves(First, N, _Wave, Acc) when First >= N -> Acc;
spawn_waves(First, N, Wave, Acc) ->
    Last = min(N, First + Wave),
    Self = self(),
    New = [begin P = spawn(fun() -> idle(0) end), P ! {touch, Self, 1}, P end || _ <- lists:seq(First + 1, Last)],
    [receive ack -> ok end || _ <- New],
    spawn_waves(Last, N, Wave, [New | Acc]).
