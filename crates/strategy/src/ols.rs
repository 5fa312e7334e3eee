//! Ordinary least squares for the small question "does the model add information beyond the
//! price": outcome on `[1, mid, model − mid]`, with standard errors clustered by market (the
//! steps of one market are far from independent, so plain OLS errors would be much too narrow).

use serde::{Deserialize, Serialize};

/// A fitted coefficient with its 95% interval (normal approximation, cluster-robust).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coef {
    pub estimate: f64,
    pub se: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OlsFit {
    pub coefs: Vec<Coef>,
    pub n: usize,
    pub clusters: usize,
}

/// Inverse of a small symmetric positive-definite matrix by Gauss–Jordan with partial
/// pivoting; None when (numerically) singular.
fn invert(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let k = a.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = r.clone();
            row.extend((0..k).map(|j| if i == j { 1.0 } else { 0.0 }));
            row
        })
        .collect();
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |s, v| s.max(v.abs()))
        .max(1e-300);
    for c in 0..k {
        let p = (c..k).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[p][c].abs() < 1e-12 * scale {
            return None;
        }
        m.swap(c, p);
        let d = m[c][c];
        for v in m[c].iter_mut() {
            *v /= d;
        }
        for r in 0..k {
            if r != c {
                let f = m[r][c];
                if f != 0.0 {
                    let pivot = m[c].clone();
                    for (v, pv) in m[r].iter_mut().zip(&pivot) {
                        *v -= f * pv;
                    }
                }
            }
        }
    }
    Some(m.into_iter().map(|r| r[k..].to_vec()).collect())
}

/// Fits `y = X b` where `x[i]` is row i and `cluster[i]` its group; None when `X'X` is
/// singular (e.g. the model equals the mid everywhere) or there are fewer than two clusters.
pub fn ols_clustered(x: &[Vec<f64>], y: &[f64], cluster: &[usize]) -> Option<OlsFit> {
    let n = y.len();
    let k = x.first()?.len();
    if n <= k || x.len() != n || cluster.len() != n {
        return None;
    }
    let mut xtx = vec![vec![0.0; k]; k];
    let mut xty = vec![0.0; k];
    for (row, &yi) in x.iter().zip(y) {
        for a in 0..k {
            xty[a] += row[a] * yi;
            for b in 0..k {
                xtx[a][b] += row[a] * row[b];
            }
        }
    }
    let inv = invert(&xtx)?;
    let beta: Vec<f64> = (0..k)
        .map(|a| (0..k).map(|b| inv[a][b] * xty[b]).sum())
        .collect();
    // Meat: Σ_g (X_g' u_g)(X_g' u_g)'.
    let groups = cluster.iter().copied().max().map_or(0, |m| m + 1);
    let mut score = vec![vec![0.0; k]; groups];
    for ((row, &yi), &g) in x.iter().zip(y).zip(cluster) {
        let u = yi - row.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>();
        for a in 0..k {
            score[g][a] += row[a] * u;
        }
    }
    let used: Vec<&Vec<f64>> = score
        .iter()
        .filter(|s| s.iter().any(|v| *v != 0.0))
        .collect();
    let g = {
        let mut seen = vec![false; groups];
        cluster.iter().for_each(|&c| seen[c] = true);
        seen.iter().filter(|s| **s).count()
    };
    if g < 2 {
        return None;
    }
    let mut meat = vec![vec![0.0; k]; k];
    for s in used {
        for a in 0..k {
            for b in 0..k {
                meat[a][b] += s[a] * s[b];
            }
        }
    }
    // Small-sample factor as in Stata's cluster option.
    let c = (g as f64 / (g as f64 - 1.0)) * ((n as f64 - 1.0) / (n as f64 - k as f64));
    let mut coefs = Vec::with_capacity(k);
    for a in 0..k {
        let mut v = 0.0;
        for i in 0..k {
            for j in 0..k {
                v += inv[a][i] * meat[i][j] * inv[j][a];
            }
        }
        let se = (c * v).max(0.0).sqrt();
        coefs.push(Coef {
            estimate: beta[a],
            se,
            lo: beta[a] - 1.96 * se,
            hi: beta[a] + 1.96 * se,
        });
    }
    Some(OlsFit {
        coefs,
        n,
        clusters: g,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_exact_coefficients() {
        // y = 1 + 2 a − 3 b with no noise: the fit is exact and the intervals collapse.
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut cl = Vec::new();
        for i in 0..40 {
            let a = (i % 7) as f64;
            let b = ((i * 3) % 5) as f64;
            x.push(vec![1.0, a, b]);
            y.push(1.0 + 2.0 * a - 3.0 * b);
            cl.push(i % 8);
        }
        let fit = ols_clustered(&x, &y, &cl).unwrap();
        for (c, want) in fit.coefs.iter().zip([1.0, 2.0, -3.0]) {
            assert!((c.estimate - want).abs() < 1e-9, "{c:?}");
            assert!(c.se < 1e-6, "{c:?}");
        }
        assert_eq!(fit.clusters, 8);
    }

    #[test]
    fn singular_design_is_none() {
        let x: Vec<Vec<f64>> = (0..10)
            .map(|i| vec![1.0, i as f64, 2.0 * i as f64])
            .collect();
        let y: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let cl: Vec<usize> = (0..10).collect();
        assert!(ols_clustered(&x, &y, &cl).is_none());
    }

    #[test]
    fn noise_gives_an_interval_around_the_truth() {
        // Deterministic pseudo-noise; the interval must contain the true slope 0.5.
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut cl = Vec::new();
        let mut s: u64 = 12345;
        for i in 0..400 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
            let a = (i % 13) as f64 / 13.0;
            x.push(vec![1.0, a]);
            y.push(0.2 + 0.5 * a + noise);
            cl.push(i / 4);
        }
        let fit = ols_clustered(&x, &y, &cl).unwrap();
        let c = fit.coefs[1];
        assert!(c.lo < 0.5 && 0.5 < c.hi && c.se > 0.0, "{c:?}");
    }
}
