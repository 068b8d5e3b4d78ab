#!/usr/bin/env python3
"""Time dense vs exact_gram vs auto with `widthlab run` on the shapes of bench/README.md, "Engine choice"."""
import os
BIN = os.environ.get("WIDTHLAB_BIN", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "release", "widthlab"))
import json, subprocess, time, sys
def t(spec, reps=3):
    best=1e9
    for _ in range(reps):
        s=time.perf_counter()
        r=subprocess.run([BIN,"run","-","--json","--quiet","--threads","2"],input=json.dumps(spec).encode(),capture_output=True)
        e=time.perf_counter()-s
        if r.returncode: print(r.stderr.decode()[:300]); return None
        best=min(best,e)
    return best
def spec(n0,L,m,B,trials,method,prec):
    return {"network":{"input_dim":n0,"depth":L,"width":m,"init":{"scheme":"he","fan":"out"}},"samples":B,"trials":trials,"seed":1,"method":method,"precision":prec}
shapes=[(500,10,1000,256,1),(500,10,1000,256,8),(1000,10,1000,250,8),(500,10,1000,200,8),(500,10,1000,160,8),(500,10,1000,128,8),(500,10,1000,64,8),(500,10,1000,16,8),(100,50,1000,16,1),(1000,50,1000,16,1),(4000,10,4000,64,1),(500,10,4000,256,1),(1000,10,2000,300,2),(1000,10,2000,400,2),(500,10,300,128,8)]
print('| n0 | L | m | B | trials | precision | dense (s) | exact_gram (s) | auto (s) | auto / fastest |')
print('|---|---|---|---|---|---|---|---|---|---|')
for (n0,L,m,B,tr) in shapes:
    for prec in ["f32","f64"]:
        row=[]
        for meth in ["dense","exact","auto"]:
            row.append(t(spec(n0,L,m,B,tr,meth,prec)))
        best=min(row[0],row[1])
        print(f"| {n0} | {L} | {m} | {B} | {tr} | {prec} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} | {row[2]/best:.2f} |",flush=True)
