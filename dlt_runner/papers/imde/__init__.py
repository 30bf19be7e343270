"""On Numerical Integration in Neural Ordinary Differential Equations.

Aiqing Zhu, Pengzhan Jin, Beibei Zhu, Yifa Tang. ICML 2022 (PMLR 162), arXiv:2206.07335.

Claim: a Neural ODE trained on flow data with a fixed-step integrator converges not to the true
vector field f but to the integrator's inverse modified differential equation (IMDE) f_h, so
||f_theta - f|| <= C h^p + C' * (learning loss) for an order-p integrator. Because the IMDE of a
Hamiltonian system is Hamiltonian only for symplectic integrators, a model trained with a
non-symplectic one cannot learn the conservation law.
"""
